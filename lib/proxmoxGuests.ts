/**
 * The guest list of meshstack:proxmoxGuests: one string per guest, as
 * `vmid=101;hostname=web-1;rootfsGiB=16;mp=/srv/data:8;mp=/var/lib/app:4:local-lvm;onboot=true`.
 * Strings because Pulumi.yaml types config lists by their items and the
 * rest of the stack's lists are lists of strings; the grammar is small and
 * every mistake is named.
 */

export const GUEST_SPEC_ALLOWED =
    "a list of \"vmid=<100-999999999>;hostname=<dns label>[;rootfsGiB=<1-131072>][;mp=<absolute path>:<GiB>[:<storage>]]...[;onboot=true|false]\" " +
    "strings, such as \"vmid=101;hostname=web-1;rootfsGiB=16;mp=/srv/data:8;onboot=true\"";

export const MAX_GUEST_DISK_GIB = 131_072;

export interface GuestMountPointSpec {
    path: string;
    sizeGiB: number;
    /** Unset: the guests' storage (meshstack:proxmoxStorage). */
    storage?: string;
}

export interface GuestSpec {
    vmid: number;
    hostname: string;
    /** Unset: the archive's size. */
    rootfsGiB?: number;
    mountPoints: GuestMountPointSpec[];
    startOnBoot: boolean;
}

const HOSTNAME = /^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const STORAGE = /^[A-Za-z][A-Za-z0-9._-]*$/;
const MOUNT_PATH = /^\/[^\s,=:;]*[^/\s,=:;]$/;

function integerIn(text: string, min: number, max: number): number | undefined {
    if (!/^[0-9]+$/.test(text)) return undefined;
    const n = Number(text);
    return n >= min && n <= max ? n : undefined;
}

/** One guest string, or every problem with it. */
export function parseGuestSpec(text: string): { guest?: GuestSpec; problems: string[] } {
    const problems: string[] = [];
    const guest: Partial<GuestSpec> & { mountPoints: GuestMountPointSpec[] } = { mountPoints: [], startOnBoot: false };
    const seen = new Set<string>();
    for (const field of text.split(";").map((f) => f.trim()).filter(Boolean)) {
        const eq = field.indexOf("=");
        const key = eq > 0 ? field.slice(0, eq) : field;
        const value = eq > 0 ? field.slice(eq + 1) : "";
        if (key !== "mp" && seen.has(key)) problems.push(`${key} appears twice`);
        seen.add(key);
        switch (key) {
            case "vmid":
                guest.vmid = integerIn(value, 100, 999_999_999);
                if (guest.vmid === undefined) problems.push(`vmid ${JSON.stringify(value)} is not an integer from 100 to 999999999`);
                break;
            case "hostname":
                if (HOSTNAME.test(value)) guest.hostname = value;
                else problems.push(`hostname ${JSON.stringify(value)} is not a lowercase DNS label (1 to 63 letters, digits and -)`);
                break;
            case "rootfsGiB":
                guest.rootfsGiB = integerIn(value, 1, MAX_GUEST_DISK_GIB);
                if (guest.rootfsGiB === undefined) problems.push(`rootfsGiB ${JSON.stringify(value)} is not an integer from 1 to ${MAX_GUEST_DISK_GIB}`);
                break;
            case "mp": {
                const [path, size, storage, ...rest] = value.split(":");
                const sizeGiB = integerIn(size ?? "", 1, MAX_GUEST_DISK_GIB);
                if (!MOUNT_PATH.test(path ?? "") || path.split("/").includes("..") || sizeGiB === undefined || rest.length || (storage !== undefined && !STORAGE.test(storage))) {
                    problems.push(`mp ${JSON.stringify(value)} is not <absolute path>:<GiB 1-${MAX_GUEST_DISK_GIB}>[:<storage>]`);
                } else if (guest.mountPoints.some((m) => m.path === path)) {
                    problems.push(`mp path ${path} appears twice`);
                } else {
                    guest.mountPoints.push({ path, sizeGiB, ...(storage ? { storage } : {}) });
                }
                break;
            }
            case "onboot":
                if (value === "true" || value === "false") guest.startOnBoot = value === "true";
                else problems.push(`onboot ${JSON.stringify(value)} is not true or false`);
                break;
            default:
                problems.push(`unknown field ${JSON.stringify(key)} (fields: vmid, hostname, rootfsGiB, mp, onboot)`);
        }
    }
    if (!seen.has("vmid")) problems.push("vmid is missing");
    if (!seen.has("hostname")) problems.push("hostname is missing");
    return problems.length ? { problems } : { guest: guest as GuestSpec, problems };
}

/** Every problem of every guest string, plus VMIDs and hostnames used twice; undefined when all is well. */
export function guestListProblem(value: unknown): string | undefined {
    if (!Array.isArray(value)) return "not a list";
    const problems: string[] = [];
    const guests = value.map((item, i) => {
        const parsed = parseGuestSpec(String(item));
        for (const problem of parsed.problems) problems.push(`item ${i} (${JSON.stringify(item)}): ${problem}`);
        return parsed.guest;
    });
    for (const field of ["vmid", "hostname"] as const) {
        const values = guests.filter((g): g is GuestSpec => !!g).map((g) => g[field]);
        const repeated = [...new Set(values.filter((v, i) => values.indexOf(v) !== i))];
        for (const v of repeated) problems.push(`${field} ${v} is used by more than one guest`);
    }
    return problems.length ? problems.join("; ") : undefined;
}

export function parseGuestList(value: string[]): GuestSpec[] {
    return value.map((item) => {
        const { guest, problems } = parseGuestSpec(item);
        if (!guest) throw new Error(`invalid guest ${JSON.stringify(item)}: ${problems.join("; ")}`);
        return guest;
    });
}
