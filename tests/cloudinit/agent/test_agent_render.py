"""cloudinit/agent/agent_render.py on its own, with the sample values of its
constants block: a NATS node at 10.44.0.10/24 with four certificates.

Stdlib only; tests/cloudinit/agent/agent_render.test.ts runs this file under
Debian's python3, the interpreter a node runs the renderer with. What a hub's
copy does differently (no certificates, no routes) and the renderer as the
agent runs it are tested through cloudinit/agent.ts in tests/cloudinit/agent.test.ts
and tests/cloudinit/agent.integration.test.ts.
"""
import base64
import contextlib
import io
import json
import os
import pathlib
import runpy
import shutil
import sys
import tempfile
import unittest
from unittest import mock

SOURCE = pathlib.Path(__file__).resolve().parents[3] / "cloudinit" / "agent" / "agent_render.py"
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "fixtures"))
from private_key_pem import truncated_private_key_pem  # noqa: E402 (after its path)
ROOT_ENV = "MESHSTACK_AGENT_ROOT"
# Where the sample constants look under the root, as on a node.
PRIVATE_KEY_FILE = "etc/wireguard/privatekey"
ROUTE_PASSWORD_FILE = "etc/meshstack/nats-route-password"

NODE = "meshstack-dev-0"
INSTANCE_ID = "201"
PASSWORD = "Zx81routePassword0123456789abcdef"
CERTIFICATES = ["route-ca.crt", "route.crt", "client-ca.crt", "server.crt"]
PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUTWVzaHN0YWNr\n-----END CERTIFICATE-----\n"
ROUTES = ["10.44.0.11:6222", "10.44.0.12:6222"]


def wg_key(seed):
    """A well-formed WireGuard key (32 bytes, base64): the renderer checks the form, not the curve."""
    return base64.b64encode(bytes([seed]) * 32).decode()


def ssh_blob(*fields):
    """An OpenSSH public key blob: length-prefixed fields (RFC 4253 6.6), base64."""
    return base64.b64encode(b"".join(len(f).to_bytes(4, "big") + f for f in fields)).decode()


# Well-formed keys: the renderer checks the form (type, fields, lengths), not the curve.
ED25519 = "ssh-ed25519 " + ssh_blob(b"ssh-ed25519", bytes(range(32)))
ECDSA = "ecdsa-sha2-nistp256 " + ssh_blob(b"ecdsa-sha2-nistp256", b"nistp256", b"\x04" + bytes(64))
SSH_KEYS = [ED25519 + " ops@example", ECDSA]
ECDSA_BODY = ECDSA.split()[1]
assert ECDSA_BODY.endswith("A="), "a body whose last character before the padding carries no bits"


HUB = {"name": "wg-cache", "publicKey": wg_key(1), "endpoint": "203.0.113.1:51820", "allowedIps": ["10.44.0.0/24"], "keepaliveSeconds": 25}
PEER = {"name": "meshstack-dev-1", "publicKey": wg_key(2), "allowedIps": ["10.44.0.11/32"]}
HUB_SECTION = f"[Peer]\n# wg-cache\nPublicKey = {wg_key(1)}\nEndpoint = 203.0.113.1:51820\nAllowedIPs = 10.44.0.0/24\nPersistentKeepalive = 25\n"
PEER_SECTION = f"[Peer]\n# meshstack-dev-1\nPublicKey = {wg_key(2)}\nAllowedIPs = 10.44.0.11/32\n"


def desired(**overrides):
    doc = {
        "version": 1,
        "node": NODE,
        "instanceId": INSTANCE_ID,
        "wireguard": {"peers": [dict(HUB), dict(PEER)]},
        "certificates": {name: PEM for name in CERTIFICATES},
        "natsRoutes": list(ROUTES),
        "authorizedKeys": list(SSH_KEYS),
    }
    doc.update(overrides)
    return doc


def without(field):
    doc = desired()
    del doc[field]
    return doc


def with_peer(**overrides):
    return desired(wireguard={"peers": [dict(HUB), dict(PEER, **overrides)]})


class Rendered:
    def __init__(self, status, stdout, stderr, stage, constants):
        self.status, self.stdout, self.stderr, self.stage, self.constants = status, stdout, stderr, stage, constants

    def files(self):
        return sorted(os.listdir(self.stage))

    def text(self, name):
        return pathlib.Path(self.stage, name).read_text(encoding="utf-8")

    def mode(self, name):
        return os.stat(os.path.join(self.stage, name)).st_mode & 0o777


class RendererCase(unittest.TestCase):
    """A node root with the sample constants' files, and the renderer run on a document in it."""

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="meshstack-agent-render-")
        self.addCleanup(shutil.rmtree, self.root)
        self.private_key = wg_key(9)
        self.write(PRIVATE_KEY_FILE, self.private_key + "\n")
        self.write(ROUTE_PASSWORD_FILE, PASSWORD + "\n")

    def write(self, name, text):
        path = pathlib.Path(self.root, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def render(self, doc, instance_id=INSTANCE_ID):
        """One run as the agent starts it (argv, the root in the environment), in this process.

        runpy, not import: the renderer is a script that does its work at the
        top level, and an import would run it once per process, not per test.
        """
        self.write("desired.json", doc if isinstance(doc, str) else json.dumps(doc))
        stage = tempfile.mkdtemp(dir=self.root)
        argv = [str(SOURCE), os.path.join(self.root, "desired.json"), stage, NODE, instance_id]
        stdout, stderr = io.StringIO(), io.StringIO()
        status, constants = 0, {}
        with mock.patch.dict(os.environ, {ROOT_ENV: self.root}), mock.patch.object(sys, "argv", argv), \
                contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                constants = runpy.run_path(str(SOURCE), run_name="__main__")
            except SystemExit as done:
                status = done.code
        return Rendered(status, stdout.getvalue(), stderr.getvalue(), stage, constants)

    def assert_refused(self, doc, message):
        out = self.render(doc)
        self.assertEqual(out.status, 2, out.stderr)
        self.assertRegex(out.stderr, message)


class AgentRenderTest(RendererCase):
    def test_stages_wg0_conf_for_wg_quick_with_the_interface_as_the_first_boot_wrote_it(self):
        out = self.render(desired())
        self.assertEqual(out.status, 0, out.stderr)
        self.assertEqual(
            out.text("wg0.conf"),
            "# meshstack WireGuard (written by meshstack-agent from the desired state; edits are overwritten).\n"
            + out.constants["INTERFACE_SECTION"] + "\n" + HUB_SECTION + "\n" + PEER_SECTION,
        )
        self.assertEqual(out.mode("wg0.conf"), 0o600)

    def test_stages_wg_sync_conf_in_wgs_own_format_with_the_nodes_key_and_port(self):
        out = self.render(desired())
        self.assertEqual(out.text("wg-sync.conf"), f"[Interface]\nPrivateKey = {self.private_key}\nListenPort = 51820\n\n" + HUB_SECTION + "\n" + PEER_SECTION)
        self.assertEqual(out.mode("wg-sync.conf"), 0o600)

    def test_writes_several_allowed_ips_on_one_line(self):
        out = self.render(with_peer(allowedIps=["10.44.0.11/32", "10.44.0.128/25"]))
        self.assertEqual(out.status, 0, out.stderr)
        self.assertIn("\nAllowedIPs = 10.44.0.11/32, 10.44.0.128/25\n", out.text("wg0.conf"))

    def test_stages_the_certificates_and_the_routes_with_the_password_from_its_file(self):
        out = self.render(desired())
        self.assertEqual(out.files(), sorted(CERTIFICATES + ["authorized_keys", "routes.conf", "wg-sync.conf", "wg0.conf"]))
        for name in CERTIFICATES:
            self.assertEqual((out.text(name), out.mode(name)), (PEM, 0o644))
        self.assertEqual(
            out.text("routes.conf"),
            "# Written by meshstack-agent from the desired state. Mode 0600, owner nats.\nroutes: [\n"
            f'  "nats-route://route:{PASSWORD}@10.44.0.11:6222"\n  "nats-route://route:{PASSWORD}@10.44.0.12:6222"\n]\n',
        )
        self.assertEqual(out.mode("routes.conf"), 0o600)
        self.assertEqual(out.stdout, "2 peer(s), 2 route(s), 4 certificate(s), 2 ssh key(s)\n")

    def test_stages_roots_authorized_keys_one_key_per_line_0600(self):
        out = self.render(desired())
        self.assertEqual((out.text("authorized_keys"), out.mode("authorized_keys")), (f"{ED25519} ops@example\n{ECDSA}\n", 0o600))

    def test_writes_a_key_as_type_body_and_comment_whatever_the_spaces_around_them(self):
        out = self.render(desired(authorizedKeys=[f"  {ED25519}   ops laptop 2024  "]))
        self.assertEqual(out.status, 0, out.stderr)
        self.assertEqual(out.text("authorized_keys"), f"{ED25519} ops laptop 2024\n")

    def test_stages_an_empty_authorized_keys_for_an_empty_list_the_operator_removed_every_key(self):
        out = self.render(desired(authorizedKeys=[]))
        self.assertEqual((out.status, out.text("authorized_keys")), (0, ""))
        self.assertEqual(out.stdout, "2 peer(s), 2 route(s), 4 certificate(s), 0 ssh key(s)\n")

    def test_stages_no_authorized_keys_for_a_state_without_the_field_a_deploy_from_before(self):
        out = self.render(without("authorizedKeys"))
        self.assertEqual(out.status, 0, out.stderr)
        self.assertNotIn("authorized_keys", out.files())
        self.assertEqual(out.stdout, "2 peer(s), 2 route(s), 4 certificate(s), authorized_keys left alone (no authorizedKeys in the desired state)\n")

    def test_accepts_every_key_type_of_its_constants_the_list_lib_config_accepts(self):
        key_types = self.render(desired()).constants["SSH_KEY_TYPES"]
        keys = [f"{key_type} " + ssh_blob(key_type.encode(), b"x" * 8) for key_type in key_types if key_type != "ssh-ed25519"] + [ED25519]
        out = self.render(desired(authorizedKeys=keys))
        self.assertEqual(out.status, 0, out.stderr)
        self.assertEqual(out.text("authorized_keys"), "".join(k + "\n" for k in keys))

    def test_refuses_an_authorized_keys_line_sshd_would_read_otherwise_without_echoing_it(self):
        body = ED25519.split()[1]
        refused = [
            ("a list that is not a list", ED25519, r"desired state has an authorizedKeys that is not a list"),
            ("an item that is not a string", [ED25519, 7], r"authorizedKeys item 1 is not a string"),
            ("two keys in one item", [f"{ED25519} a\n{ECDSA} b"], r"authorizedKeys item 0 holds a line break or another control character; one public key per item, on one line"),
            ("a carriage return", [f"{ED25519} a\r"], r"authorizedKeys item 0 holds a line break"),
            ("an options prefix", [f'command="/bin/sh" {ED25519}'], r"authorizedKeys item 0 does not start with a key type \(ssh-ed25519, .*\); options such as from= or command= are not allowed"),
            ("an unknown key type", [f"ssh-dss {body}"], r"authorizedKeys item 0 does not start with a key type"),
            ("an empty item", [""], r"authorizedKeys item 0 does not start with a key type"),
            ("a type with no body", ["ssh-ed25519"], r"authorizedKeys item 0 has no base64 key body after the type"),
            ("a body that is not base64", ["ssh-ed25519 not*base64"], r"authorizedKeys item 0 has no base64 key body after the type"),
            # The bits below the padding set: it decodes to the same bytes, but sshd and ssh-keygen never write it.
            ("a body base64 would not write", ["ecdsa-sha2-nistp256 " + ECDSA_BODY[:-2] + "B="], r"authorizedKeys item 0 has a key body that is not base64 as ssh-keygen writes it"),
            ("a truncated body", ["ssh-ed25519 " + base64.b64encode(base64.b64decode(body)[:-4]).decode()], r"authorizedKeys item 0 has a truncated key body"),
            ("a body of another type", ["ssh-ed25519 " + ssh_blob(b"ssh-rsa", b"\x01\x00\x01", bytes(257))], r"authorizedKeys item 0 has a key body that is not a ssh-ed25519 key"),
            ("an ed25519 key of 31 bytes", ["ssh-ed25519 " + ssh_blob(b"ssh-ed25519", bytes(31))], r"authorizedKeys item 0 has an ssh-ed25519 body whose key is not 32 bytes"),
            ("an OpenSSH private key's body without its armour", ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUx"], r"authorizedKeys item 0 does not start with a key type"),
            ("an OpenSSH private key", [truncated_private_key_pem("OPENSSH PRIVATE KEY")], r"desired state carries private key material; refused"),
        ]
        for what, keys, message in refused:
            with self.subTest(what):
                out = self.render(desired(authorizedKeys=keys))
                self.assertEqual(out.status, 2, out.stderr)
                self.assertRegex(out.stderr, message)
                # Bodies and comments, not the type names the message lists.
                tokens = [t for key in (keys if isinstance(keys, list) else [keys]) if isinstance(key, str) for t in key.split() if len(t) >= 16]
                for token in tokens:
                    self.assertNotIn(token, out.stderr, "the refusal echoes the value")

    def test_ends_a_certificate_without_a_final_newline_with_one(self):
        out = self.render(desired(certificates={name: PEM.rstrip("\n") for name in CERTIFICATES}))
        self.assertEqual(out.status, 0, out.stderr)
        self.assertEqual(out.text("route.crt"), PEM)

    def test_waits_with_exit_3_and_stages_nothing_for_another_instance(self):
        out = self.render(desired(instanceId="199"))
        self.assertEqual(out.status, 3, out.stderr)
        self.assertIn("desired state is for instance '199', this is 201: waiting for pulumi up to write this instance's", out.stderr)
        self.assertEqual(out.files(), [])

    def test_refuses_what_is_not_a_desired_state_for_this_node(self):
        refused = [
            ("not JSON", "{ half", r"desired state is not JSON"),
            ("not an object", "[1]", r"desired state has version None; this agent reads version 1"),
            ("another format version", desired(version=2), r"desired state has version 2; this agent reads version 1"),
            ("another node", desired(node="meshstack-dev-2"), r"desired state names node 'meshstack-dev-2', not meshstack-dev-0"),
            ("private key material", desired(certificates={**desired()["certificates"], "route.key": truncated_private_key_pem("EC PRIVATE KEY")}),
             r"desired state carries private key material; refused"),
        ]
        for what, doc, message in refused:
            with self.subTest(what):
                self.assert_refused(doc, message)

    def test_refuses_a_wireguard_section_of_the_wrong_shape(self):
        refused = [
            ("no wireguard section", desired(wireguard=None)),
            ("a wireguard list", desired(wireguard=[])),
            ("peers that are not a list", desired(wireguard={"peers": {"wg-cache": HUB}})),
            ("a peer that is not an object", desired(wireguard={"peers": ["wg-cache"]})),
        ]
        for what, doc in refused:
            with self.subTest(what):
                self.assert_refused(doc, r"desired state has no wireguard\.peers list of objects")

    def test_refuses_a_peer_it_would_have_to_trust_blindly(self):
        refused = [
            ("a name that breaks out of its comment", with_peer(name="x\n[Peer]"), r"peer name 'x\\n\[Peer\]' is not a plain name"),
            ("no name", with_peer(name=None), r"peer name None is not a plain name"),
            ("a key that is too short", with_peer(publicKey="c2VjcmV0"), r"peer meshstack-dev-1: public key 'c2VjcmV0' is not a WireGuard key, or is listed twice"),
            ("a key that is not base64", with_peer(publicKey="!" * 44), r"peer meshstack-dev-1: public key '!+' is not a WireGuard key"),
            ("a key listed twice", with_peer(publicKey=HUB["publicKey"]), r"peer meshstack-dev-1: public key .* is not a WireGuard key, or is listed twice"),
            ("no allowed IPs", with_peer(allowedIps=[]), r"peer meshstack-dev-1: no allowedIps"),
            ("allowed IPs that are not a list", with_peer(allowedIps="10.44.0.11/32"), r"peer meshstack-dev-1: no allowedIps"),
            ("allowed IPs that are not a network", with_peer(allowedIps=["10.44.0.300/32"]), r"peer meshstack-dev-1: allowed IPs '10\.44\.0\.300/32' are not a network"),
            ("allowed IPs outside the subnet", with_peer(allowedIps=["0.0.0.0/0"]), r"peer meshstack-dev-1: allowed IPs 0\.0\.0\.0/0 are outside 10\.44\.0\.0/24"),
            ("allowed IPs of another family", with_peer(allowedIps=["fd00::/64"]), r"peer meshstack-dev-1: allowed IPs fd00::/64 are outside 10\.44\.0\.0/24"),
            ("an endpoint by name", with_peer(endpoint="example.net:51820"), r"peer meshstack-dev-1: endpoint 'example\.net:51820' is not ipv4:port"),
            ("an endpoint port out of range", with_peer(endpoint="203.0.113.2:65536"), r"endpoint '203\.0\.113\.2:65536' is not ipv4:port"),
            ("an endpoint without a port", with_peer(endpoint="203.0.113.2"), r"endpoint '203\.0\.113\.2' is not ipv4:port"),
            ("a keepalive of 0", with_peer(keepaliveSeconds=0), r"peer meshstack-dev-1: keepaliveSeconds 0 is not 1-65535"),
            ("a keepalive that is not a number", with_peer(keepaliveSeconds="25"), r"peer meshstack-dev-1: keepaliveSeconds '25' is not 1-65535"),
        ]
        for what, doc, message in refused:
            with self.subTest(what):
                self.assert_refused(doc, message)

    def test_refuses_certificates_and_routes_that_are_not_this_nodes(self):
        refused = [
            ("a missing certificate", desired(certificates={"route.crt": PEM}), r"desired state certificates are \['route\.crt'\]; expected \['client-ca\.crt', 'route-ca\.crt', 'route\.crt', 'server\.crt'\]"),
            ("an extra certificate", desired(certificates={**desired()["certificates"], "other.crt": PEM}), r"desired state certificates are .*'other\.crt'"),
            ("certificates that are not an object", desired(certificates=[PEM]), r"desired state certificates are \['-----BEGIN CERTIFICATE"),
            ("a certificate that is not PEM", desired(certificates={**desired()["certificates"], "server.crt": "MIIB"}), r"certificate server\.crt is not a PEM certificate"),
            ("no routes", desired(natsRoutes=None), r"desired state has no natsRoutes list"),
            ("a route outside the subnet", desired(natsRoutes=["198.51.100.7:6222"]), r"route '198\.51\.100\.7:6222' is not ipv4:port inside 10\.44\.0\.0/24"),
            ("a route by name", desired(natsRoutes=["nats-1.example.net:6222"]), r"route 'nats-1\.example\.net:6222' is not ipv4:port inside"),
            ("a route without a port", desired(natsRoutes=["10.44.0.11:"]), r"route '10\.44\.0\.11:' is not ipv4:port inside"),
        ]
        for what, doc, message in refused:
            with self.subTest(what):
                self.assert_refused(doc, message)

    def test_refuses_a_route_password_file_it_could_not_put_in_a_url_unescaped(self):
        for what, password in [("15 characters", "Zx81routePasswo"), ("a character a URL would need escaped", "Zx81routePassword@0123")]:
            with self.subTest(what):
                self.write(ROUTE_PASSWORD_FILE, password + "\n")
                self.assert_refused(desired(), r"the route password file does not hold 16\+ letters and digits")


CREDENTIALS_FILE = "etc/meshstack/agent-credentials.curl"
REPORT_URL = ("https://us-east-1.linodeobjects.com/meshstack-dev-runtime/reports/dev/meshstack-dev-0/agent-key.json"
              "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=meshstack%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=" + "5a" * 32)
REPORT_SIGNATURE = "5a" * 32


class AgentKeyOfferTest(RendererCase):
    """The agents' key offer, with seals lib/agentKey.ts made (agent_render.test.ts hands them over)."""

    @classmethod
    def setUpClass(cls):
        fixtures = os.environ.get("MESHSTACK_AGENT_KEY_FIXTURES")
        if not fixtures:
            raise RuntimeError("MESHSTACK_AGENT_KEY_FIXTURES is not set: run these tests through tests/cloudinit/agent/agent_render.test.ts, which seals them with lib/agentKey.ts")
        cls.keys = json.loads(pathlib.Path(fixtures).read_text(encoding="utf-8"))

    def setUp(self):
        super().setUp()
        self.write(CREDENTIALS_FILE, self.keys["currentCredentials"])

    def offer(self, **overrides):
        return dict({"id": self.keys["nextId"], "sealed": dict(self.keys["sealedToNode"]), "reportUrl": REPORT_URL}, **overrides)

    def assert_no_key_staged(self, out):
        self.assertNotIn("agent-credentials.curl", out.files())
        self.assertEqual([name for name in out.files() if name.endswith(".der")], [], "a key file left in the stage")

    def assert_refused_without_secrets(self, doc, message):
        out = self.render(doc)
        self.assertEqual(out.status, 2, out.stderr)
        self.assertRegex(out.stderr, message)
        for secret in (self.keys["nextSecret"], REPORT_SIGNATURE, self.private_key):
            self.assertNotIn(secret, out.stderr)
        self.assert_no_key_staged(out)

    def test_opens_a_seal_lib_agent_key_made_and_stages_the_key_as_render_agent_credentials_writes_it(self):
        out = self.render(desired(agentKey=self.offer()))
        self.assertEqual(out.status, 0, out.stderr)
        self.assertEqual((out.text("agent-credentials.curl"), out.mode("agent-credentials.curl")), (self.keys["nextCredentials"], 0o600))
        self.assertEqual(out.files(), sorted(CERTIFICATES + ["agent-credentials.curl", "agent-key-report.json", "agent-key-report.url", "authorized_keys", "routes.conf", "wg-sync.conf", "wg0.conf"]))
        self.assertEqual(out.stdout, f"2 peer(s), 2 route(s), 4 certificate(s), 2 ssh key(s), agents' key {self.keys['nextId']} (switching)\n")

    def test_stages_the_report_for_the_offered_key_and_its_url_0600(self):
        out = self.render(desired(agentKey=self.offer()))
        self.assertEqual(json.loads(out.text("agent-key-report.json")), {"version": 1, "node": NODE, "instanceId": INSTANCE_ID, "agentKeyId": self.keys["nextId"]})
        self.assertEqual(out.text("agent-key-report.url"), REPORT_URL + "\n")
        self.assertEqual((out.mode("agent-key-report.json"), out.mode("agent-key-report.url")), (0o600, 0o600))

    def test_stages_no_key_when_the_offer_is_the_key_in_use_and_still_the_report(self):
        self.write(CREDENTIALS_FILE, self.keys["nextCredentials"])
        # Nothing to open: a seal for another node would do as well.
        out = self.render(desired(agentKey=self.offer(sealed=self.keys["sealedToOtherNode"])))
        self.assertEqual(out.status, 0, out.stderr)
        self.assert_no_key_staged(out)
        self.assertEqual(json.loads(out.text("agent-key-report.json"))["agentKeyId"], self.keys["nextId"])
        self.assertEqual(out.stdout, f"2 peer(s), 2 route(s), 4 certificate(s), 2 ssh key(s), agents' key {self.keys['nextId']} (in use)\n")

    def test_stages_neither_key_nor_report_for_a_state_without_an_offer(self):
        out = self.render(desired())
        self.assertEqual(out.status, 0, out.stderr)
        self.assertEqual([name for name in out.files() if name.startswith("agent-")], [])

    def test_refuses_a_seal_made_for_another_node_naming_the_key_id_never_the_key(self):
        self.assert_refused_without_secrets(
            desired(agentKey=self.offer(sealed=self.keys["sealedToOtherNode"])),
            rf"refused the offered agents' key {self.keys['nextId']}: its seal does not verify with this node's WireGuard key \(sealed to another node, or altered\)")

    def test_refuses_an_altered_seal(self):
        def flipped(field):
            raw = bytearray(base64.b64decode(self.keys["sealedToNode"][field]))
            raw[0] ^= 1
            return dict(self.keys["sealedToNode"], **{field: base64.b64encode(bytes(raw)).decode()})
        for field in ("ciphertext", "mac", "ephemeralPublicKey"):
            with self.subTest(field):
                self.assert_refused_without_secrets(desired(agentKey=self.offer(sealed=flipped(field))), rf"refused the offered agents' key {self.keys['nextId']}: its seal does not verify")

    def test_refuses_a_sealed_key_that_is_not_the_one_the_offer_names(self):
        self.assert_refused_without_secrets(desired(agentKey=self.offer(id="0123456789abcdef")),
                                            rf"refused the offered agents' key 0123456789abcdef: the sealed key is {self.keys['nextId']}")

    def test_refuses_a_sealed_key_pair_a_curl_config_cannot_carry(self):
        out = self.render(desired(agentKey=self.offer(id=self.keys["unsafeId"], sealed=self.keys["unsafeSealed"])))
        self.assertEqual(out.status, 2, out.stderr)
        self.assertRegex(out.stderr, rf"refused the offered agents' key {self.keys['unsafeId']}: its sealed key pair is not an access key id and a secret of \[A-Za-z0-9\+/=_-\]\+")
        self.assertNotIn('Next"Secret', out.stderr)
        self.assert_no_key_staged(out)

    def test_refuses_when_the_key_in_use_cannot_be_read(self):
        os.unlink(os.path.join(self.root, CREDENTIALS_FILE))
        self.assert_refused_without_secrets(desired(agentKey=self.offer()), r"cannot read the current agents' key from .*/etc/meshstack/agent-credentials\.curl: FileNotFoundError")
        self.write(CREDENTIALS_FILE, "# no user line\n")
        self.assert_refused_without_secrets(desired(agentKey=self.offer()), r"agent-credentials\.curl holds no user = \"<id>:<secret>\" line")

    def test_refuses_an_offer_of_the_wrong_shape_without_echoing_its_url(self):
        sealed = self.keys["sealedToNode"]
        refused = [
            ("an offer that is not an object", "offer", r"desired state has an agentKey that is not an object"),
            ("an id in capitals", self.offer(id=self.keys["nextId"].upper()), r"agentKey\.id '[0-9A-F]{16}' is not 16 lowercase hex characters"),
            ("an id too short", self.offer(id=self.keys["nextId"][:15]), r"agentKey\.id '[0-9a-f]{15}' is not 16 lowercase hex characters"),
            ("no id", {k: v for k, v in self.offer().items() if k != "id"}, r"agentKey\.id None is not 16 lowercase hex characters"),
            ("another scheme", self.offer(sealed=dict(sealed, scheme="x25519-v0")), r"agentKey\.sealed has scheme 'x25519-v0'; this agent opens x25519-hkdf-sha256-hmac-ctr-v1"),
            ("no seal", self.offer(sealed=None), r"agentKey\.sealed has scheme None"),
            ("an ephemeral key of 31 bytes", self.offer(sealed=dict(sealed, ephemeralPublicKey=base64.b64encode(bytes(31)).decode())), r"agentKey\.sealed\.ephemeralPublicKey is not base64 of 32 bytes"),
            ("a MAC that is not base64", self.offer(sealed=dict(sealed, mac="not*base64")), r"agentKey\.sealed\.mac is not base64 of 32 bytes"),
            ("no ciphertext", self.offer(sealed=dict(sealed, ciphertext="")), r"agentKey\.sealed\.ciphertext is not base64\n"),
        ]
        bad_urls = [
            ("a URL of another scheme", "ftp" + REPORT_URL[5:]),
            ("a URL with a space", REPORT_URL + " x"),
            ("a URL with a line break", REPORT_URL + "\nurl = x"),
            ("a URL with a quote", REPORT_URL + '"'),
            ("a URL with a backslash", REPORT_URL + "\\"),
            ("a URL that is not a string", ["https://h/b"]),
        ]
        refused += [(what, self.offer(reportUrl=url), r"agentKey\.reportUrl is not an http\(s\) URL of printable characters without quotes or backslashes") for what, url in bad_urls]
        for what, offer, message in refused:
            with self.subTest(what):
                self.assert_refused_without_secrets(desired(agentKey=offer), message)


SERVER_REPORT_URL = REPORT_URL.replace("agent-key.json", "nats-server.json")
MIRROR_SIGNATURE = "7c" * 32
RELEASE = {
    "version": "v2.14.7",
    "url": f"https://mirror.example.net/nats/v2.14.7/nats-server-v2.14.7-linux-{{arch}}.tar.gz?X-Amz-Signature={MIRROR_SIGNATURE}",
    "sha256": {"amd64": "e5" * 32, "arm64": "50" * 32},
    "reportUrl": SERVER_REPORT_URL,
}


class NatsServerReleaseTest(RendererCase):
    """The release a NATS node should run: one value a file in the stage, for the agent's bash."""

    def release(self, **overrides):
        return dict(RELEASE, **overrides)

    def test_stages_the_version_url_checksums_and_report_url_one_file_each_0600(self):
        out = self.render(desired(natsServer=self.release()))
        self.assertEqual(out.status, 0, out.stderr)
        staged = {name: out.text(name) for name in out.files() if name.startswith("nats-server")}
        self.assertEqual(staged, {
            "nats-server.version": "v2.14.7\n",
            "nats-server.url": RELEASE["url"] + "\n",
            "nats-server.sha256.amd64": "e5" * 32 + "\n",
            "nats-server.sha256.arm64": "50" * 32 + "\n",
            "nats-server-report.url": SERVER_REPORT_URL + "\n",
        })
        self.assertEqual({out.mode(name) for name in staged}, {0o600})
        self.assertEqual(out.stdout, "2 peer(s), 2 route(s), 4 certificate(s), 2 ssh key(s), nats-server v2.14.7\n")

    def test_stages_nothing_of_a_release_for_a_state_without_one(self):
        out = self.render(desired())
        self.assertEqual(out.status, 0, out.stderr)
        self.assertEqual([name for name in out.files() if name.startswith("nats-server")], [])

    def test_refuses_a_release_of_the_wrong_shape_without_echoing_either_url(self):
        refused = [
            ("a release that is not an object", "v2.14.7", r"desired state has a natsServer that is not an object"),
            ("a version without its v", self.release(version="2.14.7"), r"natsServer\.version '2\.14\.7' is not a nats-server release tag"),
            ("a version with a shell word in it", self.release(version="v2.14.7;reboot"), r"natsServer\.version 'v2\.14\.7;reboot' is not a nats-server release tag"),
            ("a URL without {arch}", self.release(url=RELEASE["url"].replace("{arch}", "amd64")), r"natsServer\.url is not an http\(s\) URL .* with \{arch\}"),
            ("a URL with a $", self.release(url=RELEASE["url"] + "$(reboot)"), r"natsServer\.url is not an http\(s\) URL"),
            ("a URL with a backquote", self.release(url=RELEASE["url"] + "`reboot`"), r"natsServer\.url is not an http\(s\) URL"),
            ("a URL with a quote", self.release(url=RELEASE["url"] + '"'), r"natsServer\.url is not an http\(s\) URL"),
            ("a URL of another scheme", self.release(url="ftp" + RELEASE["url"][5:]), r"natsServer\.url is not an http\(s\) URL"),
            ("no checksums", self.release(sha256=None), r"natsServer\.sha256 is not an object of checksums by architecture"),
            ("an arm64 checksum in capitals", self.release(sha256={"amd64": "e5" * 32, "arm64": "AB" * 32}), r"natsServer\.sha256\.arm64 is not 64 lowercase hex digits"),
            ("no amd64 checksum", self.release(sha256={"arm64": "50" * 32}), r"natsServer\.sha256\.amd64 is not 64 lowercase hex digits"),
            ("a report URL with a space", self.release(reportUrl=SERVER_REPORT_URL + " x"), r"natsServer\.reportUrl is not an http\(s\) URL of printable characters without quotes or backslashes"),
            ("no report URL", {k: v for k, v in RELEASE.items() if k != "reportUrl"}, r"natsServer\.reportUrl is not an http\(s\) URL"),
        ]
        for what, release, message in refused:
            with self.subTest(what):
                out = self.render(desired(natsServer=release))
                self.assertEqual(out.status, 2, out.stderr)
                self.assertRegex(out.stderr, message)
                for secret in (MIRROR_SIGNATURE, REPORT_SIGNATURE):
                    self.assertNotIn(secret, out.stderr)


if __name__ == "__main__":
    unittest.main()
