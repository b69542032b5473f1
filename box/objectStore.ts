/**
 * The box's object storage: one MinIO server on the host's underlay address
 * with TLS from the box CA (Linode Object Storage is HTTPS; the program
 * builds `https://<endpoint>`), administered with the real `mc`: a bucket per
 * ObjectStorageBucket with its lifecycle rule, and per ObjectStorageKey a
 * MinIO user whose policy reaches only its buckets. A `mirror` bucket,
 * readable without credentials, serves release tarballs to the nodes.
 *
 * MinIO runs detached with a pidfile: it outlives `npm run box` as the
 * cloud's storage outlives `pulumi up`.
 */
import { execFileSync, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { toolPath } from "../tests/support/tools";
import { stopByPidFile } from "./daemon";

export const MINIO_PORT = 9000;
const ALIAS = "box";

export interface BucketAccess {
    bucketName: string;
    permissions: string;
}

export class BoxObjectStore {
    constructor(private readonly dir: string, public readonly address: string, private readonly caCertFile: string) {}

    /** host:port, as Linode's bucket `endpoint` output (no scheme). */
    get endpointHost(): string {
        return `${this.address}:${MINIO_PORT}`;
    }

    get url(): string {
        return `https://${this.endpointHost}`;
    }

    private get pidFile(): string {
        return path.join(this.dir, "minio.pid");
    }

    private get credentialsFile(): string {
        return path.join(this.dir, "root-credentials.json");
    }

    private mc(args: string[], input?: string): string {
        try {
            return execFileSync(toolPath("mc"), ["--no-color", "--config-dir", path.join(this.dir, "mc"), ...args], { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"] });
        } catch (err) {
            const e = err as { stderr?: string; stdout?: string };
            throw new Error(`mc ${args.join(" ")} failed: ${(e.stderr || e.stdout || "").trim()}`);
        }
    }

    /** Starts MinIO with a certificate for the underlay address, and configures mc for it. */
    async start(issueServerCert: (ip: string) => { certPem: string; keyPem: string }): Promise<void> {
        const certs = path.join(this.dir, "certs");
        fs.mkdirSync(path.join(certs, "CAs"), { recursive: true });
        const { certPem, keyPem } = issueServerCert(this.address);
        fs.writeFileSync(path.join(certs, "public.crt"), certPem);
        fs.writeFileSync(path.join(certs, "private.key"), keyPem, { mode: 0o600 });
        const root = { user: "box-root", password: crypto.randomBytes(24).toString("hex") };
        fs.writeFileSync(this.credentialsFile, JSON.stringify(root), { mode: 0o600 });
        const log = fs.openSync(path.join(this.dir, "minio.log"), "a");
        // No MINIO_REGION: MinIO then accepts the signing region the program derives from the endpoint's first label.
        const child = spawn(toolPath("minio"), ["server", path.join(this.dir, "data"), "--address", this.endpointHost, "--console-address", `${this.address}:${MINIO_PORT + 1}`, "--certs-dir", certs, "--quiet"], {
            env: { ...process.env, MINIO_ROOT_USER: root.user, MINIO_ROOT_PASSWORD: root.password, MINIO_BROWSER: "off" },
            stdio: ["ignore", log, log],
            detached: true,
        });
        fs.writeFileSync(this.pidFile, String(child.pid));
        child.unref();
        const mcCerts = path.join(this.dir, "mc", "certs", "CAs");
        fs.mkdirSync(mcCerts, { recursive: true });
        fs.copyFileSync(this.caCertFile, path.join(mcCerts, "box-ca.crt"));
        const deadline = Date.now() + 60_000;
        for (;;) {
            try {
                this.mc(["alias", "set", ALIAS, this.url, root.user, root.password]);
                this.mc(["ready", ALIAS]);
                return;
            } catch (err) {
                if (Date.now() > deadline) throw new Error(`MinIO did not become ready: ${(err as Error).message}\n${fs.readFileSync(path.join(this.dir, "minio.log"), "utf8")}`);
                await new Promise((r) => setTimeout(r, 500));
            }
        }
    }

    createBucket(name: string, lifecycle?: { prefix: string; expiryDays: number }): void {
        this.mc(["mb", "--ignore-existing", `${ALIAS}/${name}`]);
        if (lifecycle) this.mc(["ilm", "rule", "add", "--prefix", lifecycle.prefix, "--expire-days", String(lifecycle.expiryDays), `${ALIAS}/${name}`]);
    }

    deleteBucket(name: string): void {
        this.mc(["rb", "--force", `${ALIAS}/${name}`]);
    }

    /** A user whose one policy reaches only the listed buckets, as Linode's bucket-scoped keys do. */
    createScopedKey(label: string, accesses: BucketAccess[]): { accessKey: string; secretKey: string } {
        const accessKey = `BOX${crypto.randomBytes(8).toString("hex").toUpperCase()}`;
        // Hex, not base64url: a secret that starts with "-" reads as a flag to `mc admin user add`.
        const secretKey = crypto.randomBytes(20).toString("hex");
        const actions = (permissions: string) => (permissions === "read_only" ? ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"] : ["s3:*"]);
        const policy = {
            Version: "2012-10-17",
            Statement: accesses.map((a) => ({ Effect: "Allow", Action: actions(a.permissions), Resource: [`arn:aws:s3:::${a.bucketName}`, `arn:aws:s3:::${a.bucketName}/*`] })),
        };
        const policyFile = path.join(this.dir, `policy-${accessKey}.json`);
        fs.writeFileSync(policyFile, JSON.stringify(policy));
        const name = `scoped-${label}`.replace(/[^A-Za-z0-9-]/g, "-").slice(0, 60);
        this.mc(["admin", "user", "add", ALIAS, accessKey, secretKey]);
        this.mc(["admin", "policy", "create", ALIAS, name, policyFile]);
        this.mc(["admin", "policy", "attach", ALIAS, name, "--user", accessKey]);
        return { accessKey, secretKey };
    }

    deleteScopedKey(accessKey: string): void {
        this.mc(["admin", "user", "remove", ALIAS, accessKey]);
    }

    /** True while MinIO still has the key's user (checked with root credentials). */
    scopedKeyExists(accessKey: string): boolean {
        const users = this.mc(["--json", "admin", "user", "list", ALIAS]).split("\n").filter(Boolean).map((line) => JSON.parse(line).accessKey);
        return users.includes(accessKey);
    }

    /** Publishes a file in the anonymous-read `mirror` bucket; returns its URL. */
    publishToMirror(key: string, file: string): string {
        this.mc(["mb", "--ignore-existing", `${ALIAS}/mirror`]);
        this.mc(["anonymous", "set", "download", `${ALIAS}/mirror`]);
        this.mc(["cp", "--quiet", file, `${ALIAS}/mirror/${key}`]);
        return `${this.url}/mirror/${key}`;
    }

    /** True when the object exists (checked with root credentials). */
    objectExists(bucket: string, key: string): boolean {
        try {
            this.mc(["stat", `${ALIAS}/${bucket}/${key}`]);
            return true;
        } catch {
            return false;
        }
    }

    /** Kills MinIO (its data directory goes with the run directory). */
    static stop(dir: string): boolean {
        return stopByPidFile(path.join(dir, "minio.pid"), "minio", "SIGKILL");
    }
}
