// sigstore-js as an independent peer for Sealgate's interop tests (offline, key-based).
//
//   node sigstore-peer.mjs sign-attach PRIV_PEM PUB_PEM IMAGE DIGEST USER PASS
//       Sign a cosign-v3-style statement (predicate https://sigstore.dev/cosign/sign/v1) for DIGEST
//       with @sigstore/sign and attach the bundle to IMAGE as an OCI 1.1 referrer with @sigstore/oci.
//   node sigstore-peer.mjs verify BUNDLE_JSON PUB_PEM DIGEST
//       Verify a bundle with @sigstore/verify against one public key; check the statement names DIGEST.
//   node sigstore-peer.mjs verify-keyless BUNDLE_JSON TRUSTED_ROOT_JSON DIGEST SAN ISSUER
//       Verify a keyless bundle (certificate, SCT, Rekor entry) with @sigstore/verify against a
//       trusted root, requiring that SAN and issuer; check the statement names DIGEST.
//
// Exit 0 on success; 1 with the error on stderr otherwise.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { DSSEBundleBuilder } from '@sigstore/sign';
import { attachArtifactToImage } from '@sigstore/oci';
import { bundleToJSON, bundleFromJSON } from '@sigstore/bundle';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { TrustedRoot } from '@sigstore/protobuf-specs';

const BUNDLE_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const PREDICATE = 'https://sigstore.dev/cosign/sign/v1';

function hint(pem) {
  const der = crypto.createPublicKey(pem).export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(der).digest('base64');
}

async function signAttach(privPath, pubPath, image, digest, user, pass) {
  const priv = fs.readFileSync(privPath, 'utf8');
  const pub = fs.readFileSync(pubPath, 'utf8');
  const statement = {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ digest: { sha256: digest.split(':')[1] } }],
    predicateType: PREDICATE,
    predicate: {},
  };
  const signer = {
    sign: async (data) => ({
      signature: crypto.sign('sha256', data, priv),
      key: { $case: 'publicKey', publicKey: pub, hint: hint(pub) },
    }),
  };
  const bundle = await new DSSEBundleBuilder({ signer, witnesses: [] }).create({
    data: Buffer.from(JSON.stringify(statement)),
    type: 'application/vnd.in-toto+json',
  });
  const json = bundleToJSON(bundle);
  const descriptor = await attachArtifactToImage({
    imageName: image,
    imageDigest: digest,
    artifact: Buffer.from(JSON.stringify(json)),
    mediaType: BUNDLE_TYPE,
    annotations: {
      'dev.sigstore.bundle.content': 'dsse-envelope',
      'dev.sigstore.bundle.predicateType': PREDICATE,
    },
    credentials: { username: user, password: pass },
  });
  process.stdout.write(JSON.stringify({ referrer: descriptor.digest }) + '\n');
}

async function verify(bundlePath, pubPath, digest) {
  const pub = fs.readFileSync(pubPath, 'utf8');
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
  const trust = toTrustMaterial(
    {
      mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [],
    },
    () => ({ publicKey: crypto.createPublicKey(pub), validFor: () => true }),
  );
  const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
  verifier.verify(toSignedEntity(bundle));
  const statement = JSON.parse(Buffer.from(bundle.content.dsseEnvelope.payload).toString('utf8'));
  const named = statement.subject.some((s) => `sha256:${s.digest.sha256}` === digest);
  if (!named) throw new Error(`statement does not name ${digest}`);
  process.stdout.write('verified\n');
}

async function verifyKeyless(bundlePath, rootPath, digest, san, issuer) {
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
  const trust = toTrustMaterial(TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(rootPath, 'utf8'))));
  const verifier = new Verifier(trust, { tlogThreshold: 1, ctlogThreshold: 1, timestampThreshold: 0 });
  const signer = verifier.verify(toSignedEntity(bundle), {
    subjectAlternativeName: san,
    extensions: { issuer },
  });
  const statement = JSON.parse(Buffer.from(bundle.content.dsseEnvelope.payload).toString('utf8'));
  const named = statement.subject.some((s) => `sha256:${s.digest.sha256}` === digest);
  if (!named) throw new Error(`statement does not name ${digest}`);
  process.stdout.write(`verified ${signer.identity?.subjectAlternativeName}\n`);
}

const [cmd, ...args] = process.argv.slice(2);
try {
  if (cmd === 'sign-attach') await signAttach(...args);
  else if (cmd === 'verify') await verify(...args);
  else if (cmd === 'verify-keyless') await verifyKeyless(...args);
  else throw new Error(`unknown command ${cmd}`);
} catch (e) {
  process.stderr.write(`${e.code || e.name}: ${e.message}\n`);
  process.exit(1);
}
