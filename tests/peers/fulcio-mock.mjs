// A local Fulcio (and RFC 3161 timestamp authority) for Sealgate's keyless-signing tests:
// @sigstore/mock's CA, CT log, signingCert handler and TSA, behind the checks the real
// services make first.
//
//   node fulcio-mock.mjs JWKS_URL
//
// Listens on 127.0.0.1 (a free port) and prints one JSON line on stdout:
//   {"url", "rootCertificate" (base64 DER), "ctlogPublicKey" (base64 SPKI DER), "ctlogId" (base64),
//    "tsaCertificates" (base64 DER, signing certificate first)}
// then serves POST /api/v2/signingCert and POST /api/v1/timestamp until stdin closes (so a
// dead test leaves no process).
//
// Before the mock issues a certificate, like Fulcio (docs/how-certificate-issuing-works.md):
//  - the OIDC token's signature verifies with the issuer's JWKS and its audience is "sigstore";
//  - the proof of possession (publicKeyRequest.proofOfPossession) is the request key's
//    signature over the token's email, else sub;
//  - the SAN is the issuer's subject: GitHub https://github.com/<job_workflow_ref>,
//    GitLab https://gitlab.com/<ci_config_ref_uri>, else sub (Fulcio's config.go issuer types).
// The timestamp endpoint takes a standard DER TimeStampReq (application/timestamp-query, as
// cosign and sigstore-python send it), not only the mock's JSON form; the request's nonce is
// copied into the answer as sent (the mock holds nonces as JS numbers, which a 64-bit nonce
// overflows). NOTE: RFC 3161 §2.4.1 TimeStampReq, §2.4.2 TimeStampResp.
// Wrapper fixes from PEERS.md §4: the token may come as Authorization: Bearer, and PEM lines
// are re-wrapped to 64 columns (the mock writes one long line).
import crypto from 'node:crypto';
import http from 'node:http';
import * as jose from 'jose';
import asn1js from 'asn1js';
import { fulcioHandler, initializeCA, initializeCTLog, initializeTSA } from '@sigstore/mock';

const jwks = jose.createRemoteJWKSet(new URL(process.argv[2]));
const keyPair = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ctlog = await initializeCTLog(keyPair());
const ca = await initializeCA(keyPair(), ctlog);
const handler = fulcioHandler(ca, { subjectClaim: 'sealgate_san' });
const tsa = await initializeTSA(keyPair());
// Whole seconds: DER drops a fraction's trailing zeros (".12Z"), and @sigstore/core's time
// parser (asn1/parse.js RE_TIME_LONG_YEAR) takes only ".ddd" or none, so one signing in ten
// failed sigstore-js with "invalid time" — a sigstore-js limit, not a fault in the token.
tsa.getCurrentTime = () => new Date(Math.floor(Date.now() / 1000) * 1000);
const mockTstInfo = Object.getPrototypeOf(tsa).tstInfo;
tsa.tstInfo = (req) => {
  const info = mockTstInfo.call(tsa, { ...req, nonce: 0 });
  info.nonce = req.nonceBytes ? new asn1js.Integer({ valueHex: req.nonceBytes }) : undefined;
  return info;
};

// A minimal DER reader: enough for TimeStampReq.
function tlv(buf, pos) {
  let len = buf[pos + 1], off = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[off + i];
    off += n;
  }
  return { tag: buf[pos], start: off, end: off + len };
}
function children(buf, node) {
  const out = [];
  for (let p = node.start; p < node.end; p = out[out.length - 1].end) out.push(tlv(buf, p));
  return out;
}
const HASHES = { 1: '2.16.840.1.101.3.4.2.1', 2: '2.16.840.1.101.3.4.2.2', 3: '2.16.840.1.101.3.4.2.3' };

async function timestamp(body) {
  const req = tlv(body, 0);
  const [, imprint, ...rest] = children(body, req);
  const [alg, hashed] = children(body, imprint);
  const oid = children(body, alg)[0];
  const hashOID = HASHES[body[oid.end - 1]];
  if (!hashOID) return [400, 'unsupported hash algorithm'];
  const nonce = rest.find((n) => n.tag === 0x02);
  const certReq = rest.find((n) => n.tag === 0x01);
  const der = await tsa.timestamp({
    artifactHash: body.subarray(hashed.start, hashed.end),
    hashAlgorithmOID: hashOID,
    nonce: 0,
    nonceBytes: nonce ? body.subarray(nonce.start, nonce.end) : undefined,
    policyOID: '1.3.6.1.4.1.57264.2',
    certReq: certReq ? body[certReq.start] !== 0 : false,
  });
  return [200, Buffer.from(der.buffer, der.byteOffset, der.byteLength)];
}

function subjectOf(claims) {
  if (claims.iss === 'https://token.actions.githubusercontent.com' || claims.job_workflow_ref) {
    return `https://github.com/${claims.job_workflow_ref}`;
  }
  if (claims.ci_config_ref_uri) return `https://${claims.ci_config_ref_uri}`;
  return claims.email || claims.sub;
}

function pem64(text) {
  return text.replace(/-----BEGIN ([A-Z ]+)-----\n?([A-Za-z0-9+/=\n]+?)\n?-----END \1-----/g,
    (_, label, b64) => `-----BEGIN ${label}-----\n${b64.replace(/\n/g, '').match(/.{1,64}/g).join('\n')}\n-----END ${label}-----`);
}

async function signingCert(body, auth) {
  const req = JSON.parse(body);
  const token = req.credentials?.oidcIdentityToken || (auth || '').replace(/^Bearer /i, '');
  let claims;
  try {
    ({ payload: claims } = await jose.jwtVerify(token, jwks, { audience: 'sigstore' }));
  } catch (e) {
    return [401, `invalid identity token: ${e.code || e.message}`];
  }
  const pk = req.publicKeyRequest;
  if (!pk?.publicKey?.content || !pk.proofOfPossession) return [400, 'missing publicKeyRequest'];
  const ok = crypto.verify('sha256', Buffer.from(claims.email || claims.sub),
    crypto.createPublicKey(pk.publicKey.content), Buffer.from(pk.proofOfPossession, 'base64'));
  if (!ok) return [400, 'the proof of possession does not verify'];
  const forged = [jose.base64url.encode(JSON.stringify({ alg: 'none' })),
    jose.base64url.encode(JSON.stringify({ ...claims, sealgate_san: subjectOf(claims) })), ''].join('.');
  const out = await handler.fn(JSON.stringify({ ...req, credentials: { oidcIdentityToken: forged } }));
  // Fulcio answers 200 OK (grpc-gateway); the mock says 201, which cosign's client refuses.
  return [out.statusCode === 201 ? 200 : out.statusCode, pem64(String(out.response))];
}

const server = http.createServer((request, response) => {
  const chunks = [];
  request.on('data', (c) => chunks.push(c));
  request.on('end', async () => {
    let status = 404, text = 'not found';
    if (request.method === 'POST' && request.url === '/api/v1/timestamp') {
      try {
        const [code, der] = await timestamp(Buffer.concat(chunks));
        response.writeHead(code, { 'Content-Type': 'application/timestamp-reply' });
        return response.end(der);
      } catch (e) {
        [status, text] = [400, `bad timestamp request: ${e.message || e}`];
      }
    } else if (request.method === 'POST' && request.url === '/api/v2/signingCert') {
      try {
        [status, text] = await signingCert(Buffer.concat(chunks).toString(), request.headers.authorization);
      } catch (e) {
        [status, text] = [400, String(e.message || e)];
      }
    }
    response.writeHead(status, { 'Content-Type': status < 300 ? 'application/json' : 'text/plain' });
    response.end(text);
  });
});
server.listen(0, '127.0.0.1', () => {
  const b64 = (v) => Buffer.from(v.buffer ? new Uint8Array(v.buffer, v.byteOffset ?? 0, v.byteLength) : v).toString('base64');
  process.stdout.write(JSON.stringify({
    url: `http://127.0.0.1:${server.address().port}`,
    rootCertificate: b64(ca.rootCertificate),
    ctlogPublicKey: b64(Buffer.from(ctlog.publicKey)),
    ctlogId: b64(Buffer.from(ctlog.logID)),
    tsaCertificates: [b64(tsa.intCertificate), b64(tsa.rootCertificate)],
  }) + '\n');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
