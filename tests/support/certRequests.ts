import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { opensslRequestConfig } from "../../cloudinit/natsCerts";
import { RequestedIdentity } from "../../lib/certRequest";
import { toolPath } from "./tools";

/**
 * A real certificate request for `identity`, made the way a node makes it
 * (openssl req with the node's own request config), for a fresh key:
 * ECDSA P-256 unless `rsa`. `config` replaces the request config (to ask
 * for what no node's profile asks for).
 */
export function opensslCertRequest(identity: RequestedIdentity, options: { rsa?: boolean; config?: string } = {}): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshstack-csr-"));
    try {
        const key = path.join(dir, "key.pem");
        const config = path.join(dir, "req.cnf");
        fs.writeFileSync(config, options.config ?? opensslRequestConfig(identity));
        const keyArgs = options.rsa ? ["-newkey", "rsa:2048"] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
        return execFileSync(toolPath("openssl"), ["req", "-new", ...keyArgs, "-nodes", "-keyout", key, "-config", config], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}
