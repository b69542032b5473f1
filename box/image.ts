/**
 * The box's one image (box/image/build.sh): the Linode image id it stands
 * for, and the Debian mirror baked into its sources.list, which decides what
 * the box's apt cache serves.
 */
import * as fs from "fs";
import * as path from "path";

/** The only image the box has; any other image id in the stack is refused. */
export const BOX_IMAGE_ID = "linode/debian12";

/** The host (host:port) of the Debian mirror the image's sources.list names, as build.sh recorded it; undefined when it is not plain http (apt's http proxy does not carry https). */
export function imageArchiveHost(imageDir: string): string | undefined {
    const file = path.join(imageDir, "mirror");
    if (!fs.existsSync(file)) throw new Error(`box image ${imageDir} does not say its Debian mirror; rebuild it with box/image/build.sh`);
    const mirror = new URL(fs.readFileSync(file, "utf8").trim());
    return mirror.protocol === "http:" ? mirror.host : undefined;
}
