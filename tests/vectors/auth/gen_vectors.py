#!/usr/bin/env python3
"""Independent computation of the device-auth and JWT vectors (Python hmac/hashlib/base64,
not the C code under test). Run once; its output is committed as device_auth.json and
jwt.json, read by tests/unit/codecs/test_auth.c and test_jwt.c.
Usage: python3 gen_vectors.py  (writes both files next to this script)"""
import base64, hashlib, hmac, json, os

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
HERE = os.path.dirname(os.path.abspath(__file__))


def password(pk, dn, secret):
    msg = "clientId" + pk + "." + dn + "deviceName" + dn + "deviceSecret" + secret + "productKey" + pk
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


def sign(pk, dn, product_secret):
    msg = "deviceName" + dn + "productKey" + pk
    return hmac.new(product_secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def signed_raw(secret, h, p):
    """Signs the given base64url texts as they are (to reach the checks after the signature)."""
    return h + "." + p + "." + b64(hmac.new(secret, (h + "." + p).encode(), hashlib.sha256).digest())


def jwt(secret, header, payload):
    h = b64(header.encode() if isinstance(header, str) else header)
    p = b64(payload.encode() if isinstance(payload, str) else payload)
    s = b64(hmac.new(secret, (h + "." + p).encode(), hashlib.sha256).digest())
    return h + "." + p + "." + s


auth = []
for pk, dn, secret, psecret in [
    ("pk001", "dev01", "0123456789abcdef0123456789abcdef", "prodsecret"),
    ("a1B2c3D4e5F6g7H8", "传感器.温度-1", "s3cr3t", "prodsecret"),
    ("p" * 32, "d" * 64, "x", "y"),
]:
    auth.append({"productKey": pk, "deviceName": dn, "deviceSecret": secret,
                 "clientId": pk + "." + dn, "username": dn + "&" + pk,
                 "password": password(pk, dn, secret),
                 "productSecret": psecret, "sign": sign(pk, dn, psecret)})

SECRET = "iotgw-test-secret-0123456789abcdef"
S = SECRET.encode()
STD = '{"alg":"HS256","typ":"JWT"}'
GOOD = '{"productKey":"pk001","deviceName":"dev01","exp":1767225600}'
good = jwt(S, STD, GOOD)
h, p, s = good.split(".")
tampered_payload = b64(GOOD.replace("dev01", "dev02").encode())
cases = [
    # name, token, now, expected result, claims (when filled)
    ("created by the gateway", good, 1767225599, "OK"),
    ("expired at exp", good, 1767225600, "GW_E_TOKEN_EXPIRED"),
    ("expired later", good, 1800000000, "GW_E_TOKEN_EXPIRED"),
    ("hutool header order, typ first", jwt(S, '{"typ":"JWT","alg":"HS256"}',
     '{"deviceName":"dev01","productKey":"pk001","exp":1767225600}'), 0, "OK"),
    ("no typ", jwt(S, '{"alg":"HS256"}', GOOD), 0, "OK"),
    ("typ in lower case", jwt(S, '{"alg":"HS256","typ":"jwt"}', GOOD), 0, "OK"),
    ("extra claims ignored", jwt(S, STD, '{"productKey":"pk001","deviceName":"dev01","exp":1767225600,"iat":1}'), 0, "OK"),
    ("wrong secret", jwt(b"another-secret", STD, GOOD), 0, "GW_E_TOKEN_FORGED"),
    ("tampered payload", h + "." + tampered_payload + "." + s, 0, "GW_E_TOKEN_FORGED"),
    ("signature truncated", good[:-1], 0, "GW_E_TOKEN_FORGED"),
    ("signature with an extra char", good + "A", 0, "GW_E_TOKEN_FORGED"),
    ("signature last char changed", good[:-1] + ("A" if good[-1] != "A" else "B"), 0, "GW_E_TOKEN_FORGED"),
    # 32 bytes = 42 base64 chars + 4 bits: the last char's 2 low bits are padding, so this
    # decodes to the same MAC; a strict verifier still refuses the different text.
    ("signature non-canonical trailing bits", good[:-1] + B64URL[B64URL.index(good[-1]) ^ 1], 0, "GW_E_TOKEN_FORGED"),
    ("alg none, empty signature", b64(b'{"alg":"none","typ":"JWT"}') + "." + p + ".", 0, "GW_E_TOKEN_MALFORMED"),
    ("alg none, copied signature", b64(b'{"alg":"none","typ":"JWT"}') + "." + p + "." + s, 0, "GW_E_TOKEN_MALFORMED"),
    ("alg HS512", jwt(S, '{"alg":"HS512","typ":"JWT"}', GOOD), 0, "GW_E_TOKEN_MALFORMED"),
    ("typ JWS", jwt(S, '{"alg":"HS256","typ":"JWS"}', GOOD), 0, "GW_E_TOKEN_MALFORMED"),
    ("crit header", jwt(S, '{"alg":"HS256","crit":["x"],"x":1}', GOOD), 0, "GW_E_TOKEN_MALFORMED"),
    ("header not JSON", jwt(S, 'HS256', GOOD), 0, "GW_E_TOKEN_MALFORMED"),
    ("header JSON array", jwt(S, '["HS256"]', GOOD), 0, "GW_E_TOKEN_MALFORMED"),
    ("signed payload not JSON", jwt(S, STD, "not json"), 0, "GW_E_TOKEN_MALFORMED"),
    ("signed payload trailing garbage", jwt(S, STD, GOOD + "x"), 0, "GW_E_TOKEN_MALFORMED"),
    ("missing exp", jwt(S, STD, '{"productKey":"pk001","deviceName":"dev01"}'), 0, "GW_E_TOKEN_MALFORMED"),
    ("exp as string", jwt(S, STD, '{"productKey":"pk001","deviceName":"dev01","exp":"1767225600"}'), 0, "GW_E_TOKEN_MALFORMED"),
    ("exp fractional", jwt(S, STD, '{"productKey":"pk001","deviceName":"dev01","exp":1767225600.5}'), 0, "GW_E_TOKEN_MALFORMED"),
    ("missing productKey", jwt(S, STD, '{"deviceName":"dev01","exp":1767225600}'), 0, "GW_E_TOKEN_MALFORMED"),
    ("deviceName with slash", jwt(S, STD, '{"productKey":"pk001","deviceName":"a/b","exp":1767225600}'), 0, "GW_E_TOKEN_MALFORMED"),
    ("two parts", h + "." + p, 0, "GW_E_TOKEN_MALFORMED"),
    ("four parts", good + ".x", 0, "GW_E_TOKEN_MALFORMED"),
    ("empty payload part", h + ".." + s, 0, "GW_E_TOKEN_MALFORMED"),
    ("padding", h + "." + p + "=." + s, 0, "GW_E_TOKEN_MALFORMED"),
    ("standard alphabet char", h + "." + p + "." + s[:-1] + "+", 0, "GW_E_TOKEN_MALFORMED"),
    ("whitespace", " " + good, 0, "GW_E_TOKEN_MALFORMED"),
    ("payload length 1 mod 4, validly signed", signed_raw(S, h, p + "A" * ((1 - len(p)) % 4)), 0, "GW_E_TOKEN_MALFORMED"),
    ("payload not base64 of JSON, unsigned", h + "." + p + "A." + s, 0, "GW_E_TOKEN_FORGED"),
    ("empty", "", 0, "GW_E_TOKEN_MALFORMED"),
]
jwt_doc = {
    "secret": SECRET,
    "good": {"token": good, "productKey": "pk001", "deviceName": "dev01", "exp": 1767225600},
    "cases": [{"name": n, "token": t, "now": now, "result": r} for n, t, now, r in cases],
}
with open(os.path.join(HERE, "device_auth.json"), "w") as f:
    json.dump(auth, f, indent=2, ensure_ascii=False)
    f.write("\n")
with open(os.path.join(HERE, "jwt.json"), "w") as f:
    json.dump(jwt_doc, f, indent=2, ensure_ascii=False)
    f.write("\n")
