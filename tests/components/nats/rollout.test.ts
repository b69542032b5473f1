import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { NatsImageRolloutGuard, natsImageRolloutGuard } from "../../../components/nats/rollout";
import { rejoinPendingKey } from "../../../lib/runtimeChannel";
import { meshTopology } from "../../../lib/topology";
import { MockCloud, startMockCloud, unwrapSecrets } from "../../../tooling/mockCloud";

const nodes = meshTopology({ hubInterfaceAddress: "10.44.0.1/24", natsNodeCount: 3, clusterName: "meshstack-test" }).nats;
const runtime = { endpoint: "https://us-east-1.linodeobjects.com", region: "us-east-1", bucket: "runtime", accessKeyId: "AKID", secretAccessKey: "SECRET" };

async function guardOf(input: { nodeImages: Record<number, string>; rejoinWaits: boolean }): Promise<{ cloud: MockCloud; rollout: NatsImageRolloutGuard }> {
    const cloud = await startMockCloud({ project: "meshstack", stack: "test" });
    let rollout: NatsImageRolloutGuard | undefined;
    await cloud.runProgram(() => {
        const parent = new pulumi.ComponentResource("meshstack:test:Parent", "nats");
        const outputs = Object.fromEntries(Object.entries(runtime).map(([k, v]) => [k, pulumi.output(v)])) as { [K in keyof typeof runtime]: pulumi.Output<string> };
        rollout = natsImageRolloutGuard(parent, "nats", { stack: "test", nodes, image: "linode/debian12", runtime: outputs, ...input });
        return {};
    });
    return { cloud, rollout: rollout! };
}

describe("natsImageRolloutGuard (mocks)", () => {
    it("gives each node its own image where natsNodeImages names it, else the cluster's, and hands the guard the same", async () => {
        const { cloud, rollout } = await guardOf({ nodeImages: { 1: "linode/debian13" }, rejoinWaits: false });
        assert.deepStrictEqual(nodes.map((n) => rollout.imageOf(n.index)), ["linode/debian12", "linode/debian13", "linode/debian12"]);
        const guard = cloud.byName("nats-image-rollout");
        assert.strictEqual(guard.parent, "nats");
        assert.deepStrictEqual(guard.inputs.images, { "nats-0": "linode/debian12", "nats-1": "linode/debian13", "nats-2": "linode/debian12" });
        assert.strictEqual(guard.inputs.rejoinMarks, undefined);
    });

    it("with rejoin waits, reads each node's mark from the runtime bucket", async () => {
        const { cloud } = await guardOf({ nodeImages: {}, rejoinWaits: true });
        const marks = unwrapSecrets(cloud.byName("nats-image-rollout").inputs).rejoinMarks;
        assert.deepStrictEqual(marks, { ...runtime, keys: Object.fromEntries(nodes.map((n) => [`nats-${n.index}`, rejoinPendingKey("test", n.hostname)])) });
    });
});
