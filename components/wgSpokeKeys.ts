import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { wgPublicKeyFromPrivate, WgSpokePeer } from "../cloudinit/wgMesh";

export interface WgSpokeKeysArgs {
    /**
     * One entry per spoke: its name (the node's hostname; it names the key
     * resource and labels the spoke's `[Peer]` on the hub) and its WireGuard
     * IP without prefix, e.g. 10.44.0.10 (MeshTopology.nats[i].wgAddress).
     */
    spokes: { name: string; address: string }[];
}

/** One spoke's identity in the mesh. */
export interface WgSpokeKey {
    name: string;
    /** WireGuard IP without prefix. */
    address: string;
    /** base64 of 32 random bytes, what `wg genkey` prints. Secret. */
    privateKey: pulumi.Output<string>;
    /** What `wg pubkey` prints for privateKey. Not secret. */
    publicKey: pulumi.Output<string>;
}

/**
 * WireGuard keys of the mesh's spokes, made at deploy time so the hub can
 * list every spoke before any spoke exists: no runtime registration, no
 * dynamic provider. Create it before the hub (WgCache, which takes `peers`)
 * and the spokes (NatsCluster, which takes the private keys).
 *
 * The private keys live in Pulumi state as secrets, exactly as the NATS TLS
 * private keys (@pulumi/tls) already do: whoever can decrypt the stack's
 * state can impersonate a spoke, so the stack's secrets provider is what
 * protects them. The hub, by contrast, generates its key on the node and
 * only its public key ever leaves it. A spoke's key survives `up`s and
 * replacements of its instance; it changes only when its RandomBytes
 * resource is replaced (a new spoke name, or `pulumi up --replace`).
 */
export class WgSpokeKeys extends pulumi.ComponentResource {
    /** In the order of args.spokes. */
    public readonly keys: WgSpokeKey[];
    private readonly byName: Map<string, WgSpokeKey>;
    /** Name, public key and address of each spoke, shaped for WgCache's `spokes`. */
    public readonly peers: pulumi.Output<WgSpokePeer[]>;

    constructor(name: string, args: WgSpokeKeysArgs, opts?: pulumi.ComponentResourceOptions) {
        super("meshstack:index:WgSpokeKeys", name, {}, opts);
        for (const field of ["name", "address"] as const) {
            const values = args.spokes.map((spoke) => spoke[field]);
            const repeated = values.find((value, i) => values.indexOf(value) !== i);
            if (repeated !== undefined) throw new pulumi.ResourceError(`WgSpokeKeys ${name}: spoke ${field} ${repeated} appears twice; every spoke needs its own`, this);
        }

        this.keys = args.spokes.map((spoke) => {
            // RandomBytes asks the engine to keep base64 secret (additionalSecretOutputs);
            // pulumi.secret makes it hold in the program itself, under mocks too.
            const bytes = new random.RandomBytes(`${name}-${spoke.name}`, { length: 32 }, { parent: this });
            const privateKey = pulumi.secret(bytes.base64);
            // Derived from a secret, but a public key: it goes into the hub's config and the stack outputs.
            const publicKey = pulumi.unsecret(privateKey.apply(wgPublicKeyFromPrivate));
            return { name: spoke.name, address: spoke.address, privateKey, publicKey };
        });
        this.byName = new Map(this.keys.map((key) => [key.name, key]));
        this.peers = pulumi.all(this.keys.map((key) => key.publicKey.apply((publicKey): WgSpokePeer => ({ name: key.name, publicKey, address: key.address }))));

        this.registerOutputs({ peers: this.peers });
    }

    /** The key of the spoke with this name, so a key travels with its node and never pairs up by position. */
    keyFor(spokeName: string): WgSpokeKey {
        const key = this.byName.get(spokeName);
        if (!key) throw new pulumi.ResourceError(`WgSpokeKeys: no spoke named ${spokeName}; have ${[...this.byName.keys()].join(", ")}`, this);
        return key;
    }
}
