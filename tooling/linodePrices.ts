/**
 * Linode list prices, USD per month, for the offline plan's cost report.
 *
 * Source: Linode's public plan catalog (GET https://api.linode.com/v4/linode/types,
 * unauthenticated; the same figures as https://www.linode.com/pricing/), as
 * read on 2026-09-17: Nanode 1GB $5, shared "Linode" plans $6 per GB of RAM
 * from 2GB ($12) to 192GB ($1152), Dedicated CPU $9 per GB from 4GB ($36),
 * High Memory 24GB $60. Object Storage: $5 a month per region with 250 GB
 * and 1 TB of transfer included. Refresh the table from the catalog when
 * Linode changes its prices; a type missing here is reported, never guessed.
 */
export const LINODE_PRICES = {
    asOf: "2026-09-17",
    source: "https://api.linode.com/v4/linode/types (public plan catalog; https://www.linode.com/pricing/)",
    currency: "USD",
    instanceMonthly: {
        "g6-nanode-1": 5,
        "g6-standard-1": 12,
        "g6-standard-2": 24,
        "g6-standard-4": 48,
        "g6-standard-6": 96,
        "g6-standard-8": 192,
        "g6-standard-16": 384,
        "g6-standard-20": 576,
        "g6-standard-24": 768,
        "g6-standard-32": 1152,
        "g6-dedicated-2": 36,
        "g6-dedicated-4": 72,
        "g6-dedicated-8": 144,
        "g6-dedicated-16": 288,
        "g6-dedicated-32": 576,
        "g7-highmem-1": 60,
    } as Record<string, number>,
    /** The Object Storage subscription: one per region the account stores in. */
    objectStorageMonthly: 5,
    /**
     * Regions whose catalog entries carry region_prices overrides (higher than
     * the base price); the report says when a stack runs in one.
     */
    regionsWithOverrides: ["id-cgk", "br-gru"],
} as const;
