/**
 * The nats-server release the nodes install, and where from. 2.10+ for v2
 * routes (pooling) and in-place replica changes of older streams; the tests
 * build the same version from the Go module proxy (scripts/setup.sh).
 *
 * The download URL is a template so a private mirror (air-gapped sites, the
 * box tier) serves the same release under its own address; the checksums
 * are checked before anything is unpacked, whatever the source.
 */
export interface NatsServerRelease {
    version: string;
    /** `{version}` and `{arch}` (dpkg architecture: amd64, arm64) are filled in on the node. */
    urlTemplate: string;
    sha256: { amd64: string; arm64: string };
}

export const NATS_SERVER_RELEASE: NatsServerRelease = {
    version: "v2.14.7",
    urlTemplate: "https://github.com/nats-io/nats-server/releases/download/{version}/nats-server-{version}-linux-{arch}.tar.gz",
    sha256: {
        amd64: "e5c20b1cb2c0566b54c544312e91e011f9e130c5c80f16a14f4cf28ef30b8be2",
        arm64: "50e0258a1b7290f3fe2e4f17506b74a90ffb1dd77867ae3a402eb0c9e2b0d40f",
    },
};

