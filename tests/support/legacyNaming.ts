/**
 * The names meshstack gave before the per-pair naming (lib/naming.ts at
 * c6f28f0): `project-stack-role` in the common form, shortened with a hash
 * only when cleaning or the 64-character limit changed it. A stack brought
 * up by that version holds these names in its state; the change matrix
 * upgrades such a stack to today's naming. Test-only: nothing in the program
 * may name anything this way again.
 */
import * as crypto from "crypto";
import * as naming from "../../lib/naming";

const LEGACY_LABEL_MAX = 64;
const LEGACY_BUCKET_MAX = 63;
const LEGACY_HASH_LENGTH = 6;
/** Roles renamed with the new scheme: the hub's firewall was `<name>-firewall`. */
const LEGACY_ROLES: Record<string, string> = { "wg-cache-fw": "wg-cache-firewall" };

function legacyPhysicalName(ctx: naming.NamingContext, role: string, max: number): string {
    const original = `${ctx.project}-${ctx.stack}-${LEGACY_ROLES[role] ?? role}`;
    let name = original.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/-{2,}/g, "-").replace(/^-+|-+$/g, "");
    if (!/^[a-z]/.test(name)) name = `m-${name}`;
    if (name === original && name.length <= max) return name;
    const head = name.slice(0, max - LEGACY_HASH_LENGTH - 1).replace(/-+$/, "");
    return `${head}-${crypto.createHash("sha256").update(original).digest("hex").slice(0, LEGACY_HASH_LENGTH)}`;
}

const LEGACY: Partial<typeof naming> = {
    instanceLabelBase: (ctx, role) => legacyPhysicalName(ctx, role, LEGACY_LABEL_MAX - naming.RANDOM_SUFFIX_LENGTH - 1),
    firewallLabel: (ctx, role) => legacyPhysicalName(ctx, role, LEGACY_LABEL_MAX),
    objectStorageKeyLabel: (ctx, role) => legacyPhysicalName(ctx, role, LEGACY_LABEL_MAX),
    bucketNameBase: (ctx, role) => legacyPhysicalName(ctx, role, LEGACY_BUCKET_MAX - naming.RANDOM_SUFFIX_LENGTH - 1),
};

/**
 * Runs `body` with lib/naming answering as the old version did. The
 * components call naming's exports through the module object, so replacing
 * them there reaches every call; they are restored however `body` ends.
 */
export async function withLegacyNaming<T>(body: () => Promise<T>): Promise<T> {
    const module = naming as unknown as Record<string, unknown>;
    const saved = Object.fromEntries(Object.keys(LEGACY).map((k) => [k, module[k]]));
    Object.assign(module, LEGACY);
    try {
        return await body();
    } finally {
        Object.assign(module, saved);
    }
}
