/**
 * The change matrix (issue 11, property 4): for each routine Day-2 change,
 * which Linode instances a `pulumi up` would replace, and that every other
 * instance keeps its user-data byte for byte. Linode user-data cannot change
 * in place, so "same user-data" is what "not replaced" means for a node.
 *
 * One `up` of the dev stack (three NATS nodes, one operator peer, one SSH
 * key), then a
 * preview of each change against its state (tests/support/engine.ts): the
 * dynamic providers decide with their own check() and diff(); @pulumi/linode,
 * random and tls resources are replaced for the inputs their providers
 * replace on.
 */
import * as assert from "assert";
import { asHostSees, ChangePreview, previewChange, StackState, Step, up } from "../support/engine";
import { sshEd25519PublicKey } from "../fixtures/sshPublicKey";
import { withLegacyNaming } from "../support/legacyNaming";

const STACK = "dev";
const INSTANCE = "linode:index/instance:Instance";
const HUB = "wg-cache-node-instance";
const NATS = ["nats-0-instance", "nats-1-instance", "nats-2-instance"];
const EVERY_INSTANCE = [HUB, ...NATS].sort();

// Operators' WireGuard public keys: base64 of 32 bytes, as `wg pubkey` prints.
const ALICE = "alice q6yPyxrcWI6K7tA1eW2Pvc0qUSf0cXfUVdWUmBjnWkk= 10.44.0.200";
const BOB = "bob YbnL0RcRXsDVa5t9Z1fdB94C+Lq8ZrA1AaV9tEWEOmM= 10.44.0.201";
// Root's SSH keys (meshstack:sshAuthorizedKeys).
const SSH_KEY = sshEd25519PublicKey(1, "ops@example");
const OTHER_SSH_KEY = sshEd25519PublicKey(2, "oncall@example");
const BASE: Record<string, string> = { "meshstack:wgOperatorPeers": JSON.stringify([ALICE]), "meshstack:sshAuthorizedKeys": JSON.stringify([SSH_KEY]) };

let state: StackState;

function change(overrides: Record<string, string>, replace?: string[]): Promise<ChangePreview> {
    return previewChange(STACK, state, { ...BASE, ...overrides }, { replace });
}

function withStep(preview: ChangePreview, step: Step, type?: string): string[] {
    return [...preview.steps].filter(([name, s]) => s === step && (!type || state.get(name)?.type === type || preview.cloud.resources.some((r) => r.name === name && r.type === type)))
        .map(([name]) => name).sort();
}

/** The instances replaced are exactly `replaced`; every instance in state that is not keeps its user-data. */
function assertInstances(preview: ChangePreview, replaced: string[]): void {
    assert.deepStrictEqual(preview.failures, [], "every dynamic provider's check() passes");
    assert.deepStrictEqual(preview.networkAttempts, [], "a preview touches no network");
    assert.deepStrictEqual(withStep(preview, "replace", INSTANCE), [...replaced].sort(), `replaced instances (reasons: ${JSON.stringify(Object.fromEntries(preview.reasons))})`);
    assert.deepStrictEqual(withStep(preview, "update", INSTANCE), [], "no instance is updated in place either");
    assert.deepStrictEqual(withStep(preview, "delete", INSTANCE), []);
    for (const name of EVERY_INSTANCE.filter((n) => !replaced.includes(n))) {
        assert.strictEqual(preview.steps.get(name), "same", `${name} is left alone`);
        assert.strictEqual(
            JSON.stringify(asHostSees(preview.cloud.byName(name).inputs).metadatas),
            JSON.stringify(state.get(name)!.inputs.metadatas),
            `${name}'s user-data is identical`,
        );
    }
}

/** The nodes the preview names as rebuilt (their rebuild guards' warnings), with what each line says. */
function rebuildWarnings(preview: ChangePreview): Map<string, string> {
    const lines = preview.providerLogs.filter((line) => line.startsWith("warning: cluster rebuild"));
    return new Map(lines.map((line) => [/ ([a-z0-9-]+) is rebuilt:/.exec(line)![1], line]));
}

const RUNTIME_DOCUMENT = "pulumi-nodejs:dynamic/meshstack:RuntimeDocument";

/** The desired-state documents (MeshRuntime) this preview rewrites in place. */
function desiredStatesUpdated(preview: ChangePreview): string[] {
    return withStep(preview, "update", RUNTIME_DOCUMENT);
}

describe("change matrix: what a Day-2 change replaces", function () {
    this.timeout(240_000);

    before(async () => {
        ({ state } = await up(STACK, BASE));
        assert.deepStrictEqual([...state].filter(([, e]) => e.type === INSTANCE).map(([n]) => n).sort(), EVERY_INSTANCE);
    });

    it("no change: every resource stays as it is", async () => {
        const preview = await change({});
        assertInstances(preview, []);
        assert.deepStrictEqual([...preview.steps.values()].filter((s) => s !== "same"), []);
        assert.deepStrictEqual([...rebuildWarnings(preview).keys()], []);
    });

    it("region changed: every instance is rebuilt, and the preview names each one as a cluster rebuild", async () => {
        const preview = await change({ "meshstack:region": "us-west" });
        assertInstances(preview, EVERY_INSTANCE);
        const warned = rebuildWarnings(preview);
        assert.deepStrictEqual([...warned.keys()].sort(), ["nats-0", "nats-1", "nats-2", "wg-cache-node"]);
        for (const line of warned.values()) assert.match(line, /a new Linode instance, with a new disk and a new WireGuard key, because meshstack:region changed from us-east to us-west/);
        // The guard runs before the label, the root of a node's replacement.
        for (const node of warned.keys()) assert.ok(preview.cloud.byName(`${node}-label`).dependencies.has(`${node}-rebuild-guard`), `${node}-label waits for its guard`);
    });

    it("natsNodeCount 3 -> 5: nothing replaced, two instances created, the old nodes' desired states updated", async () => {
        const preview = await change({ "meshstack:natsNodeCount": "5" });
        assertInstances(preview, []);
        assert.deepStrictEqual(withStep(preview, "create", INSTANCE), ["nats-3-instance", "nats-4-instance"]);
        assert.deepStrictEqual(desiredStatesUpdated(preview), ["mesh-hub", "mesh-nats-0", "mesh-nats-1", "mesh-nats-2"]);
        assert.deepStrictEqual(withStep(preview, "create", RUNTIME_DOCUMENT), ["mesh-nats-3", "mesh-nats-4"]);
    });

    it("wgListenPort changed: only the hub's instance is replaced", async () => {
        const preview = await change({ "meshstack:wgListenPort": "51821" });
        assertInstances(preview, [HUB]);
        // Every NATS node learns the hub's new endpoint through its desired state.
        assert.deepStrictEqual(desiredStatesUpdated(preview), ["mesh-hub", "mesh-nats-0", "mesh-nats-1", "mesh-nats-2"]);
    });

    it("the hub rebuilt by hand (--replace of its label): only the hub's instance is replaced", async () => {
        const preview = await change({}, ["wg-cache-node-label"]);
        assertInstances(preview, [HUB]);
    });

    it("the hub's image changed: only the hub's instance is replaced", async () => {
        const preview = await change({ "meshstack:wgCacheImage": "linode/debian13" });
        assertInstances(preview, [HUB]);
        assert.deepStrictEqual([...rebuildWarnings(preview).keys()], ["wg-cache-node"]);
        assert.match(rebuildWarnings(preview).get("wg-cache-node")!, /meshstack:wgCacheImage changed from linode\/debian12 to linode\/debian13/);
    });

    it("one NATS node rebuilt (--replace of nats-1's label): only nats-1 is replaced, deleted before its replacement", async () => {
        const preview = await change({}, ["nats-1-label"]);
        assertInstances(preview, ["nats-1-instance"]);
        assert.strictEqual(preview.cloud.byName("nats-1-instance").options?.deleteBeforeReplace, true);
        // The others learn its new key and endpoint in place.
        assert.deepStrictEqual(desiredStatesUpdated(preview), ["mesh-hub", "mesh-nats-0", "mesh-nats-1", "mesh-nats-2"]);
    });

    // Cannot hold: an instance replaced on its own keeps its generation, so its user-data carries URLs signed long ago.
    it("nats-1's instance replaced on its own (bare --replace): only it is replaced, and its boot URLs are checked again before the poll waits", async () => {
        const preview = await change({}, ["nats-1-instance"]);
        assertInstances(preview, ["nats-1-instance"]);
        assert.strictEqual(preview.steps.get("nats-1-boot-urls"), "update");
        assert.ok(preview.cloud.byName("nats-1-published").dependencies.has("nats-1-boot-urls"), "the poll waits for the check");
    });

    it("certificate renewal (nats-0's route certificate re-signed): nothing replaced, only nats-0's desired state updated", async () => {
        const preview = await change({}, ["nats-0-route"]);
        assertInstances(preview, []);
        assert.deepStrictEqual(desiredStatesUpdated(preview), ["mesh-nats-0"]);
    });

    it("bootstrapUrlExpirySeconds changed: nothing replaced", async () => {
        const preview = await change({ "meshstack:bootstrapUrlExpirySeconds": "7200" });
        assertInstances(preview, []);
    });

    it("the deploy's bucket key rotated (new access key): nothing replaced", async () => {
        const preview = await change({}, ["rendezvous-key"]);
        assertInstances(preview, []);
    });

    it("the agents' bucket key rotated (agentKeyGeneration 1 -> 2): nothing replaced; the new key offered through every desired state, the old key deleted last", async () => {
        const preview = await change({ "meshstack:agentKeyGeneration": "2" });
        assertInstances(preview, []);
        assert.deepStrictEqual(withStep(preview, "create", "linode:index/objectStorageKey:ObjectStorageKey"), ["rendezvous-agent-key-2"]);
        assert.deepStrictEqual(desiredStatesUpdated(preview), ["mesh-hub", "mesh-nats-0", "mesh-nats-1", "mesh-nats-2"]);
        // The user-data keeps the key each instance was made with.
        for (const node of ["wg-cache-node", "nats-0", "nats-1", "nats-2"]) assert.strictEqual(preview.steps.get(`${node}-first-boot-agent-key`), "same");
        assert.strictEqual(preview.steps.get("mesh-agent-key-rollout"), "update");
        // The old key goes once every other step succeeded, the wait for the nodes' reports included.
        assert.deepStrictEqual(preview.deletions, ["rendezvous-agent-key"]);
        assert.ok(preview.cloud.byName("mesh-agent-key-rollout").dependencies.has("mesh-nats-2"), "the wait starts once the desired states are written");
    });

    it("the agents' bucket key replaced in place (bare --replace of the key): nothing replaced", async () => {
        const preview = await change({}, ["rendezvous-agent-key"]);
        assertInstances(preview, []);
        assert.deepStrictEqual(desiredStatesUpdated(preview), ["mesh-hub", "mesh-nats-0", "mesh-nats-1", "mesh-nats-2"]);
    });

    it("a node rebuilt after a rotation boots with the current agents' key: its pinned key is replaced with its generation", async () => {
        const preview = await change({ "meshstack:agentKeyGeneration": "2" }, ["nats-1-label"]);
        assertInstances(preview, ["nats-1-instance"]);
        assert.strictEqual(preview.steps.get("nats-1-first-boot-agent-key"), "replace");
        for (const node of ["wg-cache-node", "nats-0", "nats-2"]) assert.strictEqual(preview.steps.get(`${node}-first-boot-agent-key`), "same");
    });

    it("an operator peer added: nothing replaced, only the hub's desired state updated", async () => {
        const preview = await change({ "meshstack:wgOperatorPeers": JSON.stringify([ALICE, BOB]) });
        assertInstances(preview, []);
        assert.deepStrictEqual(desiredStatesUpdated(preview), ["mesh-hub"]);
    });

    it("an operator peer removed: nothing replaced, only the hub's desired state updated", async () => {
        const preview = await change({ "meshstack:wgOperatorPeers": "[]" });
        assertInstances(preview, []);
        assert.deepStrictEqual(desiredStatesUpdated(preview), ["mesh-hub"]);
    });

    it("NATS image changed for every node at once: the preview fails at the rollout guard, naming the next step", async () => {
        const preview = await change({ "meshstack:natsImage": "linode/debian13" });
        assert.deepStrictEqual(preview.failures.map((f) => [f.resource, f.property]), [["nats-image-rollout", "images"]]);
        const reason = preview.failures[0].reason;
        assert.match(reason, /change the image of 3 NATS nodes at once \(nats-0: linode\/debian12 -> linode\/debian13, nats-1: .*, nats-2: .*\)/);
        assert.match(reason, /keep meshstack:natsImage at linode\/debian12 and set meshstack:natsNodeImages to \["nats-0=linode\/debian13"\]/);
        // In an `up` the instances wait for the guard, so a failed check replaces none of them.
        for (const name of NATS) assert.ok(preview.cloud.byName(name).dependencies.has("nats-image-rollout"), `${name} waits for the guard`);
    });

    it("NATS image rolled, step one (natsNodeImages moves nats-0): only nats-0 is replaced, deleted before its replacement", async () => {
        const preview = await change({ "meshstack:natsNodeImages": JSON.stringify(["nats-0=linode/debian13"]) });
        assertInstances(preview, ["nats-0-instance"]);
        // A rolled image is the rollout guard's business, not a cluster rebuild.
        assert.deepStrictEqual([...rebuildWarnings(preview).keys()], []);
        assert.strictEqual(preview.cloud.byName("nats-0-instance").options?.deleteBeforeReplace, true);
        assert.strictEqual(preview.cloud.byName("nats-0-instance").inputs.image, "linode/debian13");
    });

    it("NATS image rolled, last step (natsImage set once every node runs it, natsNodeImages emptied): nothing replaced", async () => {
        const moved = { ...BASE, "meshstack:natsNodeImages": JSON.stringify(NATS.map((_, i) => `nats-${i}=linode/debian13`)) };
        const rolled = (await up(STACK, moved)).state;
        const preview = await previewChange(STACK, rolled, { ...BASE, "meshstack:natsImage": "linode/debian13", "meshstack:natsNodeImages": "[]" });
        assert.deepStrictEqual(preview.failures, []);
        assert.deepStrictEqual([...preview.steps].filter(([, s]) => s !== "same"), []);
    });

    // The release reaches the nodes through their desired states; each
    // node's upgrade wait holds the next node's document until it reports
    // the release healthy.
    const releaseChanges: [string, Record<string, string>][] = [
        ["nats-server version changed (with its checksums)", { "meshstack:natsServerVersion": "v2.14.8", "meshstack:natsServerSha256Amd64": "a".repeat(64), "meshstack:natsServerSha256Arm64": "b".repeat(64) }],
        ["natsServerDownloadUrl changed", { "meshstack:natsServerDownloadUrl": "https://mirror.example.net/nats/{version}/nats-server-{version}-linux-{arch}.tar.gz" }],
        ["a nats-server checksum changed", { "meshstack:natsServerSha256Arm64": "c".repeat(64) }],
    ];
    const UPGRADE_WAITS = ["nats-0-server-upgrade", "nats-1-server-upgrade", "nats-2-server-upgrade"];
    for (const [what, overrides] of releaseChanges) {
        it(`${what}: nothing replaced; the NATS desired states updated in node order, each after the previous node's upgrade wait`, async () => {
            const preview = await change(overrides);
            assertInstances(preview, []);
            assert.deepStrictEqual([...rebuildWarnings(preview).keys()], []);
            assert.deepStrictEqual(desiredStatesUpdated(preview), ["mesh-nats-0", "mesh-nats-1", "mesh-nats-2"]);
            assert.deepStrictEqual(UPGRADE_WAITS.map((n) => preview.steps.get(n)), ["update", "update", "update"]);
            for (const [i, wait] of UPGRADE_WAITS.entries()) {
                assert.ok(preview.cloud.byName(wait).dependencies.has(`mesh-nats-${i}`), `${wait} waits for nats-${i}'s desired state to be written`);
                if (i > 0) assert.ok(preview.cloud.byName(`mesh-nats-${i}`).dependencies.has(UPGRADE_WAITS[i - 1]), `nats-${i}'s desired state waits for ${UPGRADE_WAITS[i - 1]}`);
            }
            assert.ok(![...preview.cloud.byName("mesh-hub").dependencies].some((d) => d.endsWith("-server-upgrade")), "the hub's desired state waits for no NATS node");
        });
    }

    it("with no release change the upgrade waits are the same: they delay nothing", async () => {
        const preview = await change({ "meshstack:sshAuthorizedKeys": JSON.stringify([OTHER_SSH_KEY]) });
        assert.deepStrictEqual(UPGRADE_WAITS.map((n) => preview.steps.get(n)), ["same", "same", "same"]);
    });

    it("a NATS node rebuilt in the same up as a release change: its wait is replaced (nothing to wait for), the others wait", async () => {
        const preview = await change({ "meshstack:natsServerDownloadUrl": "https://mirror.example.net/nats/{version}/nats-server-{version}-linux-{arch}.tar.gz" }, ["nats-1-label"]);
        assertInstances(preview, ["nats-1-instance"]);
        assert.deepStrictEqual(UPGRADE_WAITS.map((n) => preview.steps.get(n)), ["update", "replace", "update"]);
    });

    // Linode would replace an instance for new keys: the instances ignore them after creation, and each node's agent installs them.
    const sshKeyChanges: [string, string[]][] = [
        ["an SSH key added", [SSH_KEY, OTHER_SSH_KEY]],
        ["an SSH key removed (the last one)", []],
        ["an SSH key replaced by another", [OTHER_SSH_KEY]],
    ];
    for (const [what, keys] of sshKeyChanges) {
        it(`${what}: nothing replaced, every node's desired state updated, nothing else changes`, async () => {
            const preview = await change({ "meshstack:sshAuthorizedKeys": JSON.stringify(keys) });
            assertInstances(preview, []);
            const changed = [...preview.steps].filter(([, s]) => s !== "same").map(([name, s]) => `${name}: ${s}`).sort();
            assert.deepStrictEqual(changed, ["mesh-hub", "mesh-nats-0", "mesh-nats-1", "mesh-nats-2"].map((name) => `${name}: update`));
            for (const name of ["mesh-hub", "mesh-nats-0", "mesh-nats-1", "mesh-nats-2"]) {
                assert.deepStrictEqual(JSON.parse(String(asHostSees(preview.cloud.byName(name).inputs).content)).authorizedKeys, keys, name);
            }
        });
    }

    // A change of meshstack itself, not of config: the stack was brought up by
    // the version that named things project-stack-role; its next up runs today's naming.
    it("meshstack upgraded to per-pair names: firewalls and instances relabelled in place, buckets and keys keep their names, no node replaced", async () => {
        const { state: legacy } = await withLegacyNaming(() => up(STACK, BASE));
        assert.strictEqual(legacy.get("wg-cache-firewall")!.inputs.label, "meshstack-dev-wg-cache-firewall", "the old name, as the old version gave it");
        const preview = await previewChange(STACK, legacy, BASE);
        assert.deepStrictEqual(preview.failures, []);
        assert.deepStrictEqual(preview.networkAttempts, []);
        const linode = (type: string) => [...legacy].filter(([, e]) => e.type === type).map(([n]) => n).sort();
        for (const name of linode("linode:index/firewall:Firewall")) {
            assert.strictEqual(preview.steps.get(name), "update", name);
            assert.deepStrictEqual(preview.reasons.get(name), ["label"], name);
        }
        for (const name of EVERY_INSTANCE) {
            assert.strictEqual(preview.steps.get(name), "update", name);
            assert.deepStrictEqual(preview.reasons.get(name), ["label"], name);
            assert.strictEqual(JSON.stringify(asHostSees(preview.cloud.byName(name).inputs).metadatas), JSON.stringify(legacy.get(name)!.inputs.metadatas), `${name}'s user-data is identical`);
        }
        for (const name of [...linode("linode:index/objectStorageBucket:ObjectStorageBucket"), ...linode("linode:index/objectStorageKey:ObjectStorageKey")]) {
            assert.strictEqual(preview.steps.get(name), "same", `${name} keeps the name its first up gave it`);
        }
        assert.deepStrictEqual([...preview.steps].filter(([, s]) => s === "delete" || s === "create"), [], "nothing deleted or created");
        // What a preview shows as replaced: the NATS certificates, whose requests come
        // from the key polls, updated in place for the new label (nodeLabel is
        // descriptive) and so not known until that update runs. The update keeps the
        // requests it found (providers/wgPubkeyPoll.ts), so at `up` the certificates'
        // inputs come out as before and they stay. Likewise the nats-server upgrade
        // waits, replaced for another instance id: the relabelled instances' ids are
        // unknown in the preview and come out the same at `up` (and a replaced wait
        // waits for nothing).
        const replaced = [...preview.steps].filter(([, s]) => s === "replace").map(([n]) => n);
        const certificates = NATS.flatMap((_, i) => [`nats-${i}-route`, `nats-${i}-server`]);
        assert.deepStrictEqual(replaced, [...certificates, ...UPGRADE_WAITS]);
        for (const name of UPGRADE_WAITS) assert.deepStrictEqual(preview.reasons.get(name), ["instanceId"], name);
        for (const name of certificates) {
            assert.strictEqual(legacy.get(name)!.type, "tls:index/locallySignedCert:LocallySignedCert", name);
            assert.deepStrictEqual(preview.reasons.get(name), ["certRequestPem"], name);
        }
        for (const name of NATS.map((_, i) => `nats-${i}-published`)) assert.strictEqual(preview.steps.get(name), "update", `${name}: the node's key stays`);
    });

    describe("with the rejoin wait on (meshstack:natsRejoinTimeoutSeconds)", () => {
        const WAIT = { "meshstack:natsClientCidrs": JSON.stringify(["203.0.113.7/32"]), "meshstack:natsRejoinTimeoutSeconds": "900" };
        const REJOINS = ["nats-0-rejoin", "nats-1-rejoin", "nats-2-rejoin"];
        const GUARDS = ["nats-0-stream-guard", "nats-1-stream-guard", "nats-2-stream-guard"];
        let waiting: StackState;

        before(async () => {
            ({ state: waiting } = await up(STACK, { ...BASE, ...WAIT }));
        });

        it("turning it on replaces nothing: one wait and one stream guard per node, and the cluster's scale-down and meta group, are created, each wait after its node's key poll (not its bootstrap cleanup)", async () => {
            const preview = await change(WAIT);
            assertInstances(preview, []);
            assert.deepStrictEqual(withStep(preview, "create").filter((n) => n.endsWith("-rejoin")), REJOINS);
            assert.deepStrictEqual(withStep(preview, "create").filter((n) => n.endsWith("-stream-guard")), GUARDS);
            assert.deepStrictEqual(withStep(preview, "create").filter((n) => n.endsWith("-scale-down") || n.endsWith("-meta-group")), ["nats-meta-group", "nats-scale-down"]);
            for (const [i, rejoin] of REJOINS.entries()) {
                const after = preview.cloud.byName(rejoin).dependencies;
                assert.ok(after.has(NATS[i]) && after.has(`nats-${i}-published`), `${rejoin} waits for ${NATS[i]} and its key poll`);
                // Not on the node as a whole: a component's dependents wait for all its children, the bootstrap cleanup included.
                assert.ok(!after.has(`nats-${i}`) && !after.has(`nats-${i}-bootstrap-cleanup`), `${rejoin} does not wait for the bootstrap cleanup: ${[...after].join(", ")}`);
            }
        });

        it("the deploy's KV waits for every node's rejoin wait, so it never meets a rebuilt node's streams offline", async () => {
            const preview = await change({ ...WAIT, "meshstack:natsKvBucket": "control" });
            const after = preview.cloud.byName("nats-kv").dependencies;
            for (const rejoin of REJOINS) assert.ok(after.has(rejoin), `nats-kv waits for ${rejoin}: ${[...after].join(", ")}`);
        });

        it("one NATS node rebuilt (--replace nats-1-label): its wait runs again (an update on the new instance id), the others stay", async () => {
            const preview = await previewChange(STACK, waiting, { ...BASE, ...WAIT }, { replace: ["nats-1-label"] });
            assert.deepStrictEqual(withStep(preview, "replace", INSTANCE), ["nats-1-instance"]);
            assert.deepStrictEqual(REJOINS.map((n) => preview.steps.get(n)), ["same", "update", "same"]);
            assert.deepStrictEqual(preview.reasons.get("nats-1-rejoin"), ["instanceId", "server"]);
        });

        it("one NATS node rebuilt: its stream guard, fed by its instance, is deleted (and so asks JetStream) before the old instance is; the others' are updated in place", async () => {
            const preview = await previewChange(STACK, waiting, { ...BASE, ...WAIT }, { replace: ["nats-1-label"] });
            assert.deepStrictEqual(preview.failures, []);
            assert.deepStrictEqual(preview.networkAttempts, [], "the guard asks nothing in a preview");
            assert.ok(preview.cloud.byName("nats-1-stream-guard").propertyDependencies?.instanceId?.has("nats-1-instance"), "the guard takes its instance id from the instance");
            assert.deepStrictEqual(GUARDS.map((n) => preview.steps.get(n)), ["update", "replace", "update"]);
            assert.deepStrictEqual(preview.reasons.get("nats-1-stream-guard"), ["instanceId", "servers"]);
            const deletions = preview.deletions;
            assert.ok(deletions.indexOf("nats-1-stream-guard") >= 0 && deletions.indexOf("nats-1-stream-guard") < deletions.indexOf("nats-1-instance"), `the guard goes first: ${deletions.join(", ")}`);
            assert.deepStrictEqual(deletions.filter((n) => n.endsWith("-stream-guard")), ["nats-1-stream-guard"]);
        });

        it("natsNodeCount 5 -> 3: the scale-down's update evacuates nats-4, then nats-3, before anything is deleted; then each removed node's stream guard goes before its instance", async () => {
            const { state: five } = await up(STACK, { ...BASE, ...WAIT, "meshstack:natsNodeCount": "5" });
            const preview = await previewChange(STACK, five, { ...BASE, ...WAIT });
            assert.deepStrictEqual(preview.failures, []);
            assert.deepStrictEqual(preview.networkAttempts, [], "the preview names who leaves and asks no server");
            assert.deepStrictEqual(withStep(preview, "delete").filter((n) => five.get(n)!.type === INSTANCE), ["nats-3-instance", "nats-4-instance"]);
            // The engine deletes what the program no longer declares once every create and update has finished:
            // the scale-down's update (which moves the replicas and shrinks the meta group) comes first.
            assert.strictEqual(preview.steps.get("nats-scale-down"), "update");
            assert.ok(preview.reasons.get("nats-scale-down")!.includes("members"), JSON.stringify(preview.reasons.get("nats-scale-down")));
            assert.deepStrictEqual(asHostSees(preview.cloud.byName("nats-scale-down").inputs).members.map((m: { name: string }) => m.name), ["nats-0", "nats-1", "nats-2"]);
            assert.ok(preview.providerLogs.some((line) => /^\[nats-scale-down\] nats-4 \([a-z0-9-]+\), then nats-3 \([a-z0-9-]+\) leave the cluster in this up: every stream replica is moved off/.test(line)), preview.providerLogs.join("\n"));
            assert.deepStrictEqual(withStep(preview, "delete").filter((n) => n.endsWith("-stream-guard")), ["nats-3-stream-guard", "nats-4-stream-guard"]);
            for (const node of ["nats-3", "nats-4"]) {
                assert.ok(five.get(`${node}-stream-guard`)!.dependencies.includes(`${node}-instance`), `${node}'s guard depends on its instance`);
                const [guard, instance] = [`${node}-stream-guard`, `${node}-instance`].map((n) => preview.deletions.indexOf(n));
                assert.ok(guard >= 0 && guard < instance, `${node}'s guard goes before its instance: ${preview.deletions.join(", ")}`);
            }
            assert.deepStrictEqual(GUARDS.map((n) => preview.steps.get(n)), ["update", "update", "update"], "the remaining guards only learn the smaller cluster's addresses");
        });

        it("natsNodeCount 5 -> 3: every desired state that stays (the hub's and each staying node's) and the deploy's bucket come after the scale-down, so nats-3 and nats-4 stay peers and routes until they have left", async () => {
            const KV = { "meshstack:natsKvBucket": "control", "meshstack:natsKvReplicas": "3" };
            const { state: five } = await up(STACK, { ...BASE, ...WAIT, ...KV, "meshstack:natsNodeCount": "5" });
            const preview = await previewChange(STACK, five, { ...BASE, ...WAIT, ...KV });
            assert.deepStrictEqual(preview.failures, []);
            for (const document of ["mesh-hub", "mesh-nats-0", "mesh-nats-1", "mesh-nats-2"]) {
                assert.strictEqual(preview.steps.get(document), "update", `${document} drops nats-3 and nats-4`);
                assert.ok(preview.cloud.byName(document).dependencies.has("nats-scale-down"), `${document} waits for the scale-down`);
            }
            assert.ok(preview.cloud.byName("nats-kv").dependencies.has("nats-scale-down"), "the deploy's bucket is checked on the cluster the scale-down leaves");
        });

        it("natsNodeCount 5 -> 3: the meta group is settled last, after every desired state and every upgrade wait, so no member can still reach nats-3 or nats-4 and take them back", async () => {
            const { state: five } = await up(STACK, { ...BASE, ...WAIT, "meshstack:natsNodeCount": "5" });
            const preview = await previewChange(STACK, five, { ...BASE, ...WAIT });
            assert.deepStrictEqual(preview.failures, []);
            assert.strictEqual(preview.steps.get("nats-meta-group"), "update");
            assert.ok(preview.reasons.get("nats-meta-group")!.includes("members"), JSON.stringify(preview.reasons.get("nats-meta-group")));
            const after = preview.cloud.byName("nats-meta-group").dependencies;
            for (const step of ["mesh-hub", "mesh-nats-0", "mesh-nats-1", "mesh-nats-2", ...UPGRADE_WAITS]) assert.ok(after.has(step), `the meta group is settled after ${step}: ${[...after].join(", ")}`);
            assert.deepStrictEqual(preview.networkAttempts, [], "the preview asks no server");
        });

        it("natsNodeCount 5 -> 3 in the same up as nats-1 is replaced: refused in the preview by the scale-down, naming both, before anything is replaced", async () => {
            const { state: five } = await up(STACK, { ...BASE, ...WAIT, "meshstack:natsNodeCount": "5" });
            const preview = await previewChange(STACK, five, { ...BASE, ...WAIT }, { replace: ["nats-1-label"] });
            assert.deepStrictEqual(preview.failures.map((f) => [f.resource, f.property]), [["nats-scale-down", "instanceIds"]]);
            assert.match(preview.failures[0].reason, /^refused: this up removes NATS nodes nats-4 \([a-z0-9-]+\), nats-3 \([a-z0-9-]+\) .* and replaces nats-1 \([a-z0-9-]+\);/);
        });

        it("NATS image rolled one node (natsNodeImages moves nats-2): only nats-2's wait runs again", async () => {
            const preview = await previewChange(STACK, waiting, { ...BASE, ...WAIT, "meshstack:natsNodeImages": JSON.stringify(["nats-2=linode/debian13"]) });
            assert.deepStrictEqual(preview.failures, []);
            assert.deepStrictEqual(withStep(preview, "replace", INSTANCE), ["nats-2-instance"]);
            assert.deepStrictEqual(REJOINS.map((n) => preview.steps.get(n)), ["same", "same", "update"]);
        });

        it("natsNodeCount 3 -> 5: the new nodes get waits, the old ones stay", async () => {
            const preview = await previewChange(STACK, waiting, { ...BASE, ...WAIT, "meshstack:natsNodeCount": "5" });
            assert.deepStrictEqual(withStep(preview, "replace", INSTANCE), []);
            assert.deepStrictEqual(REJOINS.map((n) => preview.steps.get(n)), ["same", "same", "same"]);
            assert.deepStrictEqual(withStep(preview, "create").filter((n) => n.endsWith("-rejoin")), ["nats-3-rejoin", "nats-4-rejoin"]);
        });
    });

    describe("in prod, where the environment protects state", () => {
        let prod: StackState;
        const WEST = { "meshstack:region": "us-west" };

        before(async () => {
            ({ state: prod } = await up("prod", {}));
        });

        it("region changed: refused at every NATS node's guard before anything is replaced, naming the key, the node and the way back", async () => {
            const preview = await previewChange("prod", prod, WEST);
            assert.deepStrictEqual(preview.failures.map((f) => [f.resource, f.property]), [["nats-0-rebuild-guard", "inputs"], ["nats-1-rebuild-guard", "inputs"], ["nats-2-rebuild-guard", "inputs"]]);
            for (const [i, failure] of preview.failures.entries()) {
                assert.match(failure.reason, new RegExp(`^refused: nats-${i} is rebuilt: .* because meshstack:region changed from us-ord to us-west\\. This stack protects its state`));
                assert.match(failure.reason, /To keep the node, set meshstack:region back to us-ord\. To rebuild it on purpose: .* add "nats-\d@[0-9a-f]{8}" to meshstack:acceptRebuilds/);
            }
            // The hub holds no state: its rebuild is named, not refused.
            assert.deepStrictEqual([...rebuildWarnings(preview).keys()], ["wg-cache-node"]);
            for (const name of NATS) assert.ok(preview.cloud.byName(name.replace("-instance", "-label")).dependencies.has(name.replace("-instance", "-rebuild-guard")));
        });

        it("region changed with the refusals' tokens in meshstack:acceptRebuilds: no refusal, each rebuild named as accepted", async () => {
            const refused = await previewChange("prod", prod, WEST);
            const tokens = refused.failures.map((f) => /"(nats-\d@[0-9a-f]{8})"/.exec(f.reason)![1]);
            const preview = await previewChange("prod", prod, { ...WEST, "meshstack:acceptRebuilds": JSON.stringify(tokens) });
            assert.deepStrictEqual(preview.failures, []);
            const warned = rebuildWarnings(preview);
            for (const [i, token] of tokens.entries()) assert.match(warned.get(`nats-${i}`)!, new RegExp(`^warning: cluster rebuild, accepted by meshstack:acceptRebuilds \\(${token}\\)`));
        });

        it("a token accepts only the change it was made for: another region is refused again", async () => {
            const refused = await previewChange("prod", prod, WEST);
            const tokens = refused.failures.map((f) => /"(nats-\d@[0-9a-f]{8})"/.exec(f.reason)![1]);
            const preview = await previewChange("prod", prod, { "meshstack:region": "us-central", "meshstack:acceptRebuilds": JSON.stringify(tokens) });
            assert.deepStrictEqual(preview.failures.map((f) => f.resource), ["nats-0-rebuild-guard", "nats-1-rebuild-guard", "nats-2-rebuild-guard"]);
        });
    });
});
