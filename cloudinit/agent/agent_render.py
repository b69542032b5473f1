#!/usr/bin/python3
# meshstack agent renderer (rendered by cloudinit/agent.ts): desired state JSON -> staged files.
import base64, hashlib, hmac, ipaddress, json, os, re, subprocess, sys

doc_path, stage, node, instance_id = sys.argv[1:5]
# BEGIN per-node constants
# cloudinit/agent.ts replaces this block, from the BEGIN line to the END line,
# with one node's values; the values here are a NATS node's, so that the file
# runs as it is (pyflakes3, tests/cloudinit/agent/test_agent_render.py).
# Every byte outside this block goes into every node's user-data as it is:
# changing one changes the user-data, and so replaces every instance of every
# stack on its next `pulumi up`.
root = os.environ.get("MESHSTACK_AGENT_ROOT", "")
WG_ADDRESS = "10.44.0.10/24"
WG_LISTEN_PORT = 51820
WG_PRIVATE_KEY = root + "/etc/wireguard/privatekey"
INTERFACE_SECTION = "[Interface]\nAddress = 10.44.0.10/24\nListenPort = 51820\nPostUp = wg set %i private-key /etc/wireguard/privatekey\n"
CERTIFICATES = ["route-ca.crt","route.crt","client-ca.crt","server.crt"]
ROLE = "nats"
ROUTE_USER = "route"
ROUTE_PASSWORD_FILE = root + "/etc/meshstack/nats-route-password"
SSH_KEY_TYPES = ["ssh-ed25519","ssh-rsa","ecdsa-sha2-nistp256","ecdsa-sha2-nistp384","ecdsa-sha2-nistp521","sk-ssh-ed25519@openssh.com","sk-ecdsa-sha2-nistp256@openssh.com"]
AGENT_CREDENTIALS = root + "/etc/meshstack/agent-credentials.curl"
AGENT_CREDENTIALS_COMMENT = "# meshstack agent: a key that can read the runtime bucket only. Mode 0600."
AGENT_CREDENTIAL_CHARACTERS = "[A-Za-z0-9+/=_-]+"
AGENT_KEY_ID_LENGTH = 16
SEAL_SCHEME = "x25519-hkdf-sha256-hmac-ctr-v1"
SEAL_INFO = "meshstack agent key seal v1"
X25519_PKCS8_PREFIX = "302e020100300506032b656e04220420"
X25519_SPKI_PREFIX = "302a300506032b656e032100"
NATS_SERVER_VERSION_PATTERN = "^v[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.]+)?$"
# END per-node constants
subnet = ipaddress.ip_interface(WG_ADDRESS).network

def fail(message):
    print(message, file=sys.stderr)
    sys.exit(2)

def wg_key(value):
    try:
        return isinstance(value, str) and len(value) == 44 and len(base64.b64decode(value, validate=True)) == 32
    except ValueError:
        return False

def ssh_key_line(index, value):
    # As lib/config/access.ts checks it (RFC 4253 6.6 fields); the value is never echoed.
    what = f"authorizedKeys item {index}"
    if not isinstance(value, str):
        fail(f"{what} is not a string")
    if re.search(r"[\x00-\x1f\x7f-\x9f]", value):
        fail(f"{what} holds a line break or another control character; one public key per item, on one line")
    parts = value.strip().split(None, 2)
    if not parts or parts[0] not in SSH_KEY_TYPES:
        fail(f"{what} does not start with a key type ({', '.join(SSH_KEY_TYPES)}); options such as from= or command= are not allowed")
    body = parts[1] if len(parts) > 1 else ""
    if not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", body):
        fail(f"{what} has no base64 key body after the type")
    try:
        blob = base64.b64decode(body, validate=True)
    except ValueError:
        blob = b""
    if base64.b64encode(blob).decode() != body:
        fail(f"{what} has a key body that is not base64 as ssh-keygen writes it")
    fields = []
    while blob:
        size = int.from_bytes(blob[:4], "big")
        if len(blob) < 4 + size:
            fail(f"{what} has a truncated key body")
        fields.append(blob[4:4 + size])
        blob = blob[4 + size:]
    if len(fields) < 2 or fields[0] != parts[0].encode():
        fail(f"{what} has a key body that is not a {parts[0]} key")
    if parts[0] == "ssh-ed25519" and (len(fields) != 2 or len(fields[1]) != 32):
        fail(f"{what} has an ssh-ed25519 body whose key is not 32 bytes")
    return " ".join(parts)

def plain(value, what):
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", value):
        fail(f"{what} {value!r} is not a plain name")
    return value

with open(doc_path, encoding="utf-8") as f:
    try:
        doc = json.load(f)
    except ValueError as e:
        fail(f"desired state is not JSON: {e}")
if not isinstance(doc, dict) or doc.get("version") != 1:
    fail(f"desired state has version {doc.get('version') if isinstance(doc, dict) else None!r}; this agent reads version 1")
if doc.get("node") != node:
    fail(f"desired state names node {doc.get('node')!r}, not {node}")
if str(doc.get("instanceId")) != instance_id:
    print(f"desired state is for instance {doc.get('instanceId')!r}, this is {instance_id}: waiting for pulumi up to write this instance's", file=sys.stderr)
    sys.exit(3)
if "PRIVATE KEY-----" in json.dumps(doc):
    fail("desired state carries private key material; refused")

# A wrong shape is refused (exit 2) like any bad value, not a traceback.
wireguard = doc.get("wireguard")
peers = wireguard.get("peers") if isinstance(wireguard, dict) else None
if not isinstance(peers, list) or not all(isinstance(peer, dict) for peer in peers):
    fail("desired state has no wireguard.peers list of objects")
sections = []
seen = set()
for peer in peers:
    name = plain(peer.get("name"), "peer name")
    key = peer.get("publicKey")
    if not wg_key(key) or key in seen:
        fail(f"peer {name}: public key {key!r} is not a WireGuard key, or is listed twice")
    seen.add(key)
    allowed = peer.get("allowedIps")
    if not isinstance(allowed, list) or not allowed:
        fail(f"peer {name}: no allowedIps")
    for cidr in allowed:
        try:
            net = ipaddress.ip_network(cidr)
        except ValueError:
            fail(f"peer {name}: allowed IPs {cidr!r} are not a network")
        # subnet_of raises on another address family instead of saying no.
        if net.version != subnet.version or not net.subnet_of(subnet):
            fail(f"peer {name}: allowed IPs {cidr} are outside {subnet}")
    lines = ["[Peer]", f"# {name}", f"PublicKey = {key}"]
    endpoint = peer.get("endpoint")
    if endpoint is not None:
        host, _, port = str(endpoint).rpartition(":")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            fail(f"peer {name}: endpoint {endpoint!r} is not ipv4:port")
        if not port.isdigit() or not 0 < int(port) < 65536:
            fail(f"peer {name}: endpoint {endpoint!r} is not ipv4:port")
        lines.append(f"Endpoint = {endpoint}")
    lines.append("AllowedIPs = " + ", ".join(allowed))
    keepalive = peer.get("keepaliveSeconds")
    if keepalive is not None:
        if not isinstance(keepalive, int) or not 0 < keepalive < 65536:
            fail(f"peer {name}: keepaliveSeconds {keepalive!r} is not 1-65535")
        lines.append(f"PersistentKeepalive = {keepalive}")
    sections.append("\n".join(lines) + "\n")

def write(name, text, mode=0o600):
    path = os.path.join(stage, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)

peer_text = "\n".join(sections)
# wg-quick's file, for the next boot: the key stays in its own file.
write("wg0.conf", "# meshstack WireGuard (written by meshstack-agent from the desired state; edits are overwritten).\n" + INTERFACE_SECTION + "\n" + peer_text)
# wg's own format, for syncconf on the live interface.
with open(WG_PRIVATE_KEY, encoding="ascii") as f:
    private_key = f.read().strip()
write("wg-sync.conf", f"[Interface]\nPrivateKey = {private_key}\nListenPort = {WG_LISTEN_PORT}\n\n" + peer_text)

if ROLE == "nats":
    certificates = doc.get("certificates")
    if not isinstance(certificates, dict) or sorted(certificates) != sorted(CERTIFICATES):
        fail(f"desired state certificates are {sorted(certificates) if isinstance(certificates, dict) else certificates!r}; expected {sorted(CERTIFICATES)}")
    for name in CERTIFICATES:
        pem = certificates[name]
        if not isinstance(pem, str) or not pem.startswith("-----BEGIN CERTIFICATE-----"):
            fail(f"certificate {name} is not a PEM certificate")
        write(name, pem if pem.endswith("\n") else pem + "\n", 0o644)
    routes = doc.get("natsRoutes")
    if not isinstance(routes, list):
        fail("desired state has no natsRoutes list")
    for route in routes:
        host, _, port = str(route).rpartition(":")
        try:
            ok = ipaddress.IPv4Address(host) in subnet and port.isdigit()
        except ValueError:
            ok = False
        if not ok:
            fail(f"route {route!r} is not ipv4:port inside {subnet}")
    # The password comes from a root-only file, never from argv or the channel.
    with open(ROUTE_PASSWORD_FILE, encoding="ascii") as f:
        password = f.read().strip()
    if not re.fullmatch(r"[A-Za-z0-9]{16,}", password):
        fail("the route password file does not hold 16+ letters and digits")
    write("routes.conf", "# Written by meshstack-agent from the desired state. Mode 0600, owner nats.\nroutes: [\n"
          + "".join(f'  "nats-route://{ROUTE_USER}:{password}@{route}"\n' for route in routes) + "]\n")
summary = [f"{len(sections)} peer(s)"]
if ROLE == "nats":
    summary += [f"{len(doc['natsRoutes'])} route(s)", f"{len(CERTIFICATES)} certificate(s)"]

# The agent owns root's authorized_keys; a state from before it did leaves it alone.
if "authorizedKeys" in doc:
    keys = doc["authorizedKeys"]
    if not isinstance(keys, list):
        fail("desired state has an authorizedKeys that is not a list")
    write("authorized_keys", "".join(ssh_key_line(i, key) + "\n" for i, key in enumerate(keys)))
    summary.append(f"{len(keys)} ssh key(s)")
else:
    summary.append("authorized_keys left alone (no authorizedKeys in the desired state)")

def presigned_url(value, what):
    # A credential: never echoed. Quotes and backslashes would not survive curl's config syntax.
    if not isinstance(value, str) or not re.fullmatch(r"https?://[\x21-\x7e]+", value) or re.search(r"[\"'\\]", value):
        fail(f"{what} is not an http(s) URL of printable characters without quotes or backslashes")
    return value

def agent_key_id(access_key_id):
    # lib/agentKey.ts agentKeyId: a digest of the access key id, never the id itself.
    return hashlib.sha256(access_key_id.encode("utf-8")).hexdigest()[:AGENT_KEY_ID_LENGTH]

def base64_field(sealed, field, size=None):
    value = sealed.get(field)
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if not raw or (size is not None and len(raw) != size):
        fail(f"agentKey.sealed.{field} is not base64" + (f" of {size} bytes" if size else ""))
    return raw

def current_access_key_id():
    try:
        with open(AGENT_CREDENTIALS, encoding="ascii") as f:
            found = re.search(r'^user = "([^:"]+):', f.read(), re.M)
    except (OSError, ValueError) as e:
        fail(f"cannot read the current agents' key from {AGENT_CREDENTIALS}: {e.__class__.__name__}")
    if not found:
        fail(f"{AGENT_CREDENTIALS} holds no user = \"<id>:<secret>\" line")
    return found.group(1)

def hkdf_sha256(ikm, salt, info, size):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    for counter in range(1, (size + 31) // 32 + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:size]

def open_agent_key(key_id, ephemeral, ciphertext, mac):
    """lib/agentKey.ts openAgentKey, with openssl for X25519: the node's key goes to a 0600 file in the 0700 stage, never to argv."""
    with open(WG_PRIVATE_KEY, encoding="ascii") as f:
        private_key = base64.b64decode(f.read().strip())
    private_der, peer_der = os.path.join(stage, "wg-private.der"), os.path.join(stage, "ephemeral.der")
    try:
        fd = os.open(private_der, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(bytes.fromhex(X25519_PKCS8_PREFIX) + private_key)
        with open(peer_der, "wb") as f:
            f.write(bytes.fromhex(X25519_SPKI_PREFIX) + ephemeral)
        shared = subprocess.run(["openssl", "pkeyutl", "-derive", "-keyform", "DER", "-inkey", private_der, "-peerform", "DER", "-peerkey", peer_der],
                                check=True, capture_output=True).stdout
        recipient = subprocess.run(["openssl", "pkey", "-inform", "DER", "-in", private_der, "-pubout", "-outform", "DER"],
                                   check=True, capture_output=True).stdout[len(bytes.fromhex(X25519_SPKI_PREFIX)):]
    except subprocess.CalledProcessError as e:
        fail(f"refused the offered agents' key {key_id}: openssl could not derive its seal's key ({e.stderr.decode(errors='replace').strip()[:200]})")
    finally:
        for name in (private_der, peer_der):
            if os.path.exists(name):
                os.unlink(name)
    okm = hkdf_sha256(shared, ephemeral + recipient, SEAL_INFO.encode(), 64)
    if not hmac.compare_digest(hmac.new(okm[32:], ephemeral + ciphertext, hashlib.sha256).digest(), mac):
        fail(f"refused the offered agents' key {key_id}: its seal does not verify with this node's WireGuard key (sealed to another node, or altered)")
    plaintext = bytearray()
    for offset in range(0, len(ciphertext), 32):
        stream = hmac.new(okm[:32], (offset // 32).to_bytes(4, "big"), hashlib.sha256).digest()
        plaintext += bytes(a ^ b for a, b in zip(ciphertext[offset:offset + 32], stream))
    try:
        pair = json.loads(plaintext.decode("utf-8"))
    except ValueError:
        pair = None
    access_key_id = pair.get("accessKeyId") if isinstance(pair, dict) else None
    secret = pair.get("secretAccessKey") if isinstance(pair, dict) else None
    if not all(isinstance(v, str) and re.fullmatch(AGENT_CREDENTIAL_CHARACTERS, v) for v in (access_key_id, secret)):
        fail(f"refused the offered agents' key {key_id}: its sealed key pair is not an access key id and a secret of {AGENT_CREDENTIAL_CHARACTERS}")
    if agent_key_id(access_key_id) != key_id:
        fail(f"refused the offered agents' key {key_id}: the sealed key is {agent_key_id(access_key_id)}")
    return access_key_id, secret

# The agents' key: switched to when the offer names another than the current one; reported either way.
if "agentKey" in doc:
    offer = doc["agentKey"]
    if not isinstance(offer, dict):
        fail("desired state has an agentKey that is not an object")
    key_id = offer.get("id")
    if not isinstance(key_id, str) or not re.fullmatch(f"[0-9a-f]{{{AGENT_KEY_ID_LENGTH}}}", key_id):
        fail(f"agentKey.id {key_id!r} is not {AGENT_KEY_ID_LENGTH} lowercase hex characters")
    sealed = offer.get("sealed")
    if not isinstance(sealed, dict) or sealed.get("scheme") != SEAL_SCHEME:
        fail(f"agentKey.sealed has scheme {sealed.get('scheme') if isinstance(sealed, dict) else None!r}; this agent opens {SEAL_SCHEME}")
    sealed_parts = base64_field(sealed, "ephemeralPublicKey", 32), base64_field(sealed, "ciphertext"), base64_field(sealed, "mac", 32)
    report_url = presigned_url(offer.get("reportUrl"), "agentKey.reportUrl")
    if agent_key_id(current_access_key_id()) == key_id:
        summary.append(f"agents' key {key_id} (in use)")
    else:
        access_key_id, secret = open_agent_key(key_id, *sealed_parts)
        write("agent-credentials.curl", f'{AGENT_CREDENTIALS_COMMENT}\nuser = "{access_key_id}:{secret}"\n')
        summary.append(f"agents' key {key_id} (switching)")
    write("agent-key-report.json", json.dumps({"version": 1, "node": node, "instanceId": instance_id, "agentKeyId": key_id}, separators=(",", ":")) + "\n")
    write("agent-key-report.url", report_url + "\n")
# The nats-server release: staged as one value a file, for the agent to install or move to.
if ROLE == "nats" and "natsServer" in doc:
    release = doc["natsServer"]
    if not isinstance(release, dict):
        fail("desired state has a natsServer that is not an object")
    version = release.get("version")
    if not isinstance(version, str) or not re.fullmatch(NATS_SERVER_VERSION_PATTERN, version):
        fail(f"natsServer.version {version!r} is not a nats-server release tag (v<major>.<minor>.<patch>, an optional -suffix)")
    url = release.get("url")
    # A mirror's URL may be signed: never echoed. It reaches curl through its config syntax, and $ or ` nowhere.
    if not isinstance(url, str) or not re.fullmatch(r"https?://[\x21-\x7e]+", url) or re.search(r"[\"'\\$`]", url) or "{arch}" not in url:
        fail("natsServer.url is not an http(s) URL of printable characters without quotes, backslashes, $ or `, with {arch} for this node's architecture")
    checksums = release.get("sha256")
    if not isinstance(checksums, dict):
        fail("natsServer.sha256 is not an object of checksums by architecture")
    for arch in ("amd64", "arm64"):
        if not isinstance(checksums.get(arch), str) or not re.fullmatch(r"[0-9a-f]{64}", checksums[arch]):
            fail(f"natsServer.sha256.{arch} is not 64 lowercase hex digits")
    write("nats-server.version", version + "\n")
    write("nats-server.url", url + "\n")
    for arch in ("amd64", "arm64"):
        write(f"nats-server.sha256.{arch}", checksums[arch] + "\n")
    write("nats-server-report.url", presigned_url(release.get("reportUrl"), "natsServer.reportUrl") + "\n")
    summary.append(f"nats-server {version}")
print(", ".join(summary))
