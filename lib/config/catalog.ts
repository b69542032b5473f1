/**
 * Where instances run: the Linode region, and the dated catalog that
 * regions and instance types are checked against (lib/linodeCatalog.json).
 */
import LINODE_CATALOG from "../linodeCatalog.json";
import { editDistance } from "./editDistance";
import { each, KeySpec, matches, ParsedValues } from "./keySpec";
import { ConfigError, ConfigWarning, qualify } from "./report";
import { LINODE_REGION, LINODE_TYPE } from "./shapes";

export const catalogKeys = {
    region: {
        type: "string", default: "us-east", check: matches(LINODE_REGION),
        description: "Linode region for every instance.",
        allowed: "a Linode region id such as us-east or de-fra-2, in lib/linodeCatalog.json or meshstack:linodeCatalogExtraIds",
    },
    linodeCatalogExtraIds: {
        type: "array", default: [], check: each(matches(new RegExp(`${LINODE_REGION.source}|${LINODE_TYPE.source}`))),
        description: "Linode region and instance type ids newer than the committed catalog (lib/linodeCatalog.json, dated), accepted as they are until the catalog is refreshed.",
        allowed: "a list of Linode region ids (such as no-osl-1) or instance type ids (such as g8-dedicated-4-2)",
    },
} satisfies Record<string, KeySpec>;

const CATALOG_REGIONS: readonly string[] = LINODE_CATALOG.regions;
const CATALOG_TYPES: readonly string[] = LINODE_CATALOG.instanceTypes;
const CATALOG_NAME = `the Linode catalog of ${LINODE_CATALOG.asOf} (lib/linodeCatalog.json)`;

/** What to offer instead of an unknown id: a type's family members, else the nearest ids by edit distance. */
function catalogHint(value: string, ids: readonly string[], kind: "region" | "instance type"): string {
    const distances = ids.map((id) => [id, editDistance(value, id)] as const);
    const best = Math.min(...distances.map(([, d]) => d));
    const nearest = best <= 2 ? distances.filter(([, d]) => d === best).map(([id]) => id) : [];
    const guess = nearest.length && nearest.length <= 3 ? `did you mean ${nearest.join(" or ")}? ` : "";
    if (kind === "region") return `${guess}allowed: one of ${ids.join(", ")}`;
    const family = value.replace(/-[^-]*$/, "");
    const members = ids.filter((id) => id.startsWith(`${family}-`) && !id.slice(family.length + 1).includes("-"));
    return `${guess}allowed: ${members.length ? `in that family ${members.join(", ")}` : `one of the ${ids.length} types it lists, such as ${ids.slice(0, 4).join(", ")}`}`;
}

/**
 * Regions and instance types are checked against a committed, dated
 * catalog: a typo (us-eest) fails here, not at the Linode API halfway
 * through an `up`. A newer id is accepted when linodeCatalogExtraIds lists it.
 */
export function catalogRules(v: ParsedValues): ConfigError[] {
    const extras = new Set((v.linodeCatalogExtraIds as string[] | undefined) ?? []);
    const keys: [string, readonly string[], "region" | "instance type"][] = [
        ["region", CATALOG_REGIONS, "region"],
        // An s3-kind store's region is the S3 service's, not Linode's.
        ...(v.objectStoreKind === "linode" ? [["objectStoreRegion", CATALOG_REGIONS, "region"] as [string, readonly string[], "region"]] : []),
        ["wgCacheInstanceType", CATALOG_TYPES, "instance type"],
        ["natsInstanceType", CATALOG_TYPES, "instance type"],
    ];
    const errors: ConfigError[] = [];
    for (const [key, ids, kind] of keys) {
        const value = v[key];
        if (typeof value !== "string" || ids.includes(value) || extras.has(value)) continue;
        errors.push({
            key: qualify(key), value,
            message: `is not a Linode ${kind} in ${CATALOG_NAME}; ${catalogHint(value, ids, kind)}; or, for ${kind === "region" ? "a region" : "an instance type"} newer than the catalog, list ${value} in meshstack:linodeCatalogExtraIds`,
        });
    }
    return errors;
}

export function catalogWarnings(v: ParsedValues): ConfigWarning[] {
    const extras = (v.linodeCatalogExtraIds as string[] | undefined) ?? [];
    return extras.filter((id) => CATALOG_REGIONS.includes(id) || CATALOG_TYPES.includes(id)).map((id) => ({
        key: qualify("linodeCatalogExtraIds"),
        message: `${id} is in ${CATALOG_NAME} now; the entry can go`,
    }));
}
