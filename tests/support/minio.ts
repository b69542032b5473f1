/**
 * A real MinIO server for integration tests: verifies SigV4 exactly as an S3
 * service does, so presigning bugs fail here. Started on a random loopback
 * port over a temp directory, stopped and removed afterwards.
 */
import { ChildProcess, execFile, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { S3Credentials, S3Location, signedObjectRequest } from "../../providers/s3";
import { freePort, waitFor } from "./ports";
import { toolPath } from "./tools";

export class MinioServer {
    public readonly region = "us-east-1";
    public readonly credentials: S3Credentials = { accessKeyId: "meshstack-test", secretAccessKey: "meshstack-test-secret-0123456789" };
    private readonly output: string[] = [];

    private constructor(public readonly endpoint: string, private readonly child: ChildProcess, private readonly dataDir: string) {}

    static async start(): Promise<MinioServer> {
        const [port, consolePort] = [await freePort(), await freePort()];
        const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-minio-"));
        const child = spawn(toolPath("minio"), ["server", dataDir, "--address", `127.0.0.1:${port}`, "--console-address", `127.0.0.1:${consolePort}`, "--quiet"], {
            env: {
                ...process.env,
                MINIO_ROOT_USER: "meshstack-test",
                MINIO_ROOT_PASSWORD: "meshstack-test-secret-0123456789",
                MINIO_REGION: "us-east-1",
                MINIO_BROWSER: "off",
            },
            stdio: ["ignore", "pipe", "pipe"],
        });
        const server = new MinioServer(`http://127.0.0.1:${port}`, child, dataDir);
        child.stdout!.on("data", (d) => server.output.push(String(d)));
        child.stderr!.on("data", (d) => server.output.push(String(d)));
        try {
            // health/ready answers before IAM and the object layer are up (a loaded
            // machine then gets 503 XMinioServerNotInitialized): wait for a signed request.
            await waitFor("MinIO to become ready", async () => (await fetch(`${server.endpoint}/minio/health/ready`)).ok && (await server.signedFetch("GET", "/")).ok, 60_000);
        } catch (err) {
            await server.stop();
            throw new Error(`${(err as Error).message}\n${server.output.join("")}`);
        }
        return server;
    }

    location(bucket: string, key: string): S3Location {
        return { endpoint: this.endpoint, region: this.region, bucket, key };
    }

    /** A bodiless request signed with the root credentials. */
    private async signedFetch(method: "GET" | "PUT", pathname: string): Promise<Response> {
        const url = new URL(this.endpoint);
        const signer = new SignatureV4({ credentials: this.credentials, region: this.region, service: "s3", sha256: Sha256, uriEscapePath: false });
        const signed = await signer.sign(
            new HttpRequest({
                method, protocol: url.protocol, hostname: url.hostname, port: Number(url.port), path: pathname,
                headers: { host: url.host, "x-amz-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
            }),
        );
        const { host: _host, ...headers } = signed.headers;
        return fetch(`${this.endpoint}${pathname}`, { method, headers });
    }

    async createBucket(bucket: string): Promise<void> {
        const response = await this.signedFetch("PUT", `/${bucket}`);
        if (!response.ok) throw new Error(`create bucket ${bucket}: HTTP ${response.status} ${await response.text()}`);
    }

    async putObject(bucket: string, key: string, body: string | Buffer): Promise<void> {
        const response = await signedObjectRequest(this.location(bucket, key), this.credentials, "PUT", Buffer.from(body));
        if (response.status !== 200) throw new Error(`put ${key}: HTTP ${response.status} ${response.errorCode}`);
    }

    /** The object's bytes, or undefined when it does not exist. */
    async getObject(bucket: string, key: string): Promise<Buffer | undefined> {
        const response = await signedObjectRequest(this.location(bucket, key), this.credentials, "GET");
        if (response.status === 404) return undefined;
        if (response.status !== 200) throw new Error(`get ${key}: HTTP ${response.status} ${response.errorCode}`);
        return response.body;
    }

    /** Runs `mc` against this server as root (MC_HOST_<alias>, so no config file is written). */
    mc(args: string[]): Promise<string> {
        const url = new URL(this.endpoint);
        const env = { ...process.env, MC_CONFIG_DIR: path.join(this.dataDir, ".mc"), MC_HOST_test: `${url.protocol}//${this.credentials.accessKeyId}:${this.credentials.secretAccessKey}@${url.host}` };
        return new Promise((resolve, reject) => {
            execFile(toolPath("mc"), ["--no-color", ...args], { env, timeout: 30_000 }, (err, stdout, stderr) =>
                err ? reject(new Error(`mc ${args.join(" ")}: ${err.message}\n${stderr}`)) : resolve(stdout));
        });
    }

    /** Every object key in the bucket. */
    async listKeys(bucket: string): Promise<string[]> {
        const out = await this.mc(["ls", "--recursive", "--json", `test/${bucket}`]);
        return out.split("\n").filter(Boolean).map((line) => JSON.parse(line).key as string);
    }

    async stop(): Promise<void> {
        if (this.child.exitCode === null && this.child.signalCode === null) {
            const exited = new Promise((resolve) => this.child.once("exit", resolve));
            this.child.kill("SIGTERM");
            const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
            await exited;
            clearTimeout(timer);
        }
        fs.rmSync(this.dataDir, { recursive: true, force: true });
    }
}
