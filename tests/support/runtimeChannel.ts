/**
 * The runtime channel on a real MinIO: a bootstrap bucket and a runtime
 * bucket, the deploy's root key on both, and the agents' key, a MinIO user
 * whose policy allows GetObject on the runtime bucket and nothing else (what
 * components/objectStore.ts asks Linode for: read_only on that bucket).
 * Desired states are written by the RuntimeDocument provider in its
 * serialized form, as `pulumi up` does.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DesiredState } from "../../lib/runtimeChannel";
import { RuntimeDocument, RuntimeDocumentInputs } from "../../providers/runtimeDocument";
import { S3Credentials } from "../../providers/s3";
import { captureDynamicResource, ProviderHost } from "../harness/dynamicProviders";
import { MinioServer } from "./minio";

export const RUNTIME_BUCKET = "meshstack-test-runtime";
export const BOOTSTRAP_BUCKET = "meshstack-test-bootstrap";

const AGENTS_POLICY = "meshstack-runtime-read";

async function addAgentKey(minio: MinioServer, credentials: S3Credentials): Promise<void> {
    await minio.mc(["admin", "user", "add", "test", credentials.accessKeyId, credentials.secretAccessKey]);
    await minio.mc(["admin", "policy", "attach", "test", AGENTS_POLICY, "--user", credentials.accessKeyId]);
}

export class RuntimeChannel {
    private readonly written = new Map<string, { id: string; outs: any }>();

    private constructor(public readonly minio: MinioServer, public readonly agentCredentials: S3Credentials, private readonly host: ProviderHost, private readonly inputs: RuntimeDocumentInputs) {}

    static async start(): Promise<RuntimeChannel> {
        const minio = await MinioServer.start();
        try {
            await minio.createBucket(RUNTIME_BUCKET);
            await minio.createBucket(BOOTSTRAP_BUCKET);
            const agentCredentials = { accessKeyId: "meshstack-agent", secretAccessKey: "meshstackAgentSecret0123456789" };
            const policy = {
                Version: "2012-10-17",
                Statement: [{ Effect: "Allow", Action: ["s3:GetObject"], Resource: [`arn:aws:s3:::${RUNTIME_BUCKET}/*`] }],
            };
            const policyFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-policy-")), "policy.json");
            fs.writeFileSync(policyFile, JSON.stringify(policy));
            await minio.mc(["admin", "policy", "create", "test", AGENTS_POLICY, policyFile]);
            fs.rmSync(path.dirname(policyFile), { recursive: true });
            await addAgentKey(minio, agentCredentials);
            const captured = await captureDynamicResource(
                () => new RuntimeDocument("desired", {
                    endpoint: minio.endpoint, region: minio.region, bucket: RUNTIME_BUCKET, key: "placeholder",
                    accessKeyId: minio.credentials.accessKeyId, secretAccessKey: minio.credentials.secretAccessKey, content: "{}",
                }),
            );
            const host = await ProviderHost.start(captured.serializedProvider);
            return new RuntimeChannel(minio, agentCredentials, host, captured.inputs as RuntimeDocumentInputs);
        } catch (err) {
            await minio.stop();
            throw err;
        }
    }

    /** Another key that reads the runtime bucket only, as the agents' key does: a rotation's next key. */
    async addAgentKey(credentials: S3Credentials): Promise<void> {
        await addAgentKey(this.minio, credentials);
    }

    /** Deletes a key: what the deploy does to the old agents' key once every node reports the next. */
    async removeAgentKey(accessKeyId: string): Promise<void> {
        await this.minio.mc(["admin", "user", "remove", "test", accessKeyId]);
    }

    /** Creates the document on the first call for a key, updates it in place after, as successive `up`s do. */
    async write(key: string, state: DesiredState): Promise<void> {
        const news = { ...this.inputs, key, content: JSON.stringify(state) };
        const checked = await this.host.check(this.written.get(key)?.outs ?? {}, news);
        if (checked.failures?.length) throw new Error(checked.failures.map((f) => `${f.property}: ${f.reason}`).join("; "));
        const previous = this.written.get(key);
        if (!previous) {
            this.written.set(key, await this.host.create(checked.inputs));
            return;
        }
        const diff = await this.host.diff(previous.id, previous.outs, checked.inputs);
        if (diff.replaces?.length) throw new Error(`a desired state change would replace the document: ${diff.replaces.join(", ")}`);
        const { outs } = await this.host.update(previous.id, previous.outs, checked.inputs);
        this.written.set(key, { id: previous.id, outs });
    }

    async stop(): Promise<void> {
        await this.host.close();
        await this.minio.stop();
    }
}
