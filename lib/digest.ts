/**
 * The one content digest: names bootstrap objects, keys random suffixes and
 * lets state notice a change without keeping a secret. Captured by value
 * into serialized providers: plain function, node's crypto only.
 */
import * as crypto from "crypto";

/** Lowercase hex SHA-256 of UTF-8 text. */
export function sha256Hex(text: string): string {
    return crypto.createHash("sha256").update(text, "utf8").digest("hex");
}
