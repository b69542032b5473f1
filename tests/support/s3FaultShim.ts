/**
 * Test shim, never used outside tests: a loopback stand-in for an S3
 * endpoint that answers with S3 error XML where a test needs a response
 * MinIO with root credentials cannot give (AccessDenied, 404 on DELETE, a
 * 403 that clears, 503). With an upstream it forwards every request it does
 * not refuse, Host header kept, so SigV4 signed for the shim still verifies.
 */
import * as http from "http";
import { AddressInfo } from "net";

export type ShimAnswer = { status: number; code?: string } | "forward";

/** Decides the answer to the `count`-th request (from 1). */
export type ShimPolicy = (method: string, count: number) => ShimAnswer;

export class S3FaultShim {
    /** "METHOD path" of every request, in order. */
    public readonly requests: string[] = [];

    private constructor(private readonly server: http.Server) {}

    static async start(policy: ShimPolicy, upstream?: string): Promise<S3FaultShim> {
        const target = upstream ? new URL(upstream) : undefined;
        let shim: S3FaultShim | undefined;
        const server = http.createServer((req, res) => {
            shim!.requests.push(`${req.method} ${req.url}`);
            const answer = policy(req.method ?? "", shim!.requests.length);
            if (answer === "forward") {
                if (!target) throw new Error("S3FaultShim: a policy answered forward but the shim has no upstream");
                const forward = http.request(
                    { host: target.hostname, port: Number(target.port), method: req.method, path: req.url, headers: req.headers },
                    (upstreamAnswer) => {
                        res.writeHead(upstreamAnswer.statusCode ?? 502, upstreamAnswer.headers);
                        upstreamAnswer.pipe(res);
                    },
                );
                forward.on("error", (err) => res.writeHead(502).end(String(err)));
                req.pipe(forward);
                return;
            }
            const body = answer.code
                ? `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${answer.code}</Code><Message>test shim</Message></Error>`
                : "";
            res.writeHead(answer.status, { "content-type": "application/xml" });
            res.end(req.method === "HEAD" ? undefined : body);
        });
        shim = new S3FaultShim(server);
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        return shim;
    }

    get endpoint(): string {
        return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    }

    async stop(): Promise<void> {
        this.server.closeAllConnections();
        await new Promise((resolve) => this.server.close(resolve));
    }
}
