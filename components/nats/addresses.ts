import * as linode from "@pulumi/linode";
import * as pulumi from "@pulumi/pulumi";
import { selectPublicIpv4 } from "../../lib/endpoint";
import { NATS_DEFAULT_PORTS, NatsNode } from "../../lib/topology";
import { MeshNode } from "../meshNode";

/** Where clients reach each node, in node order. */
export interface NatsClientAddresses {
    publicIpv4s: pulumi.Output<string>[];
    /** tls://<public IP>:4222 per node. */
    clientUrls: pulumi.Output<string>[];
}

/** Per node, so what waits on one node's URL does not wait on (or, in a preview, see unknown for) every node's. */
export function natsClientAddresses(meshNodes: MeshNode[]): NatsClientAddresses {
    const publicIpv4s = meshNodes.map((n) => n.ipv4s.apply((ips) => selectPublicIpv4(ips, undefined, "a NATS client address")));
    const clientUrls = publicIpv4s.map((ip) => ip.apply((address) => `tls://${address}:${NATS_DEFAULT_PORTS.client}`));
    return { publicIpv4s, clientUrls };
}

export interface NatsDnsRecordsInput {
    /** The domain managed in Linode DNS. */
    dnsDomain: string;
    clusterName: string;
    /** The planned nodes, and their MeshNodes in the same order. */
    nodes: NatsNode[];
    meshNodes: MeshNode[];
}

/** A records for each node and the round-robin service name, made after the instances: no cycle with the certificates. */
export function natsDnsRecords(parent: pulumi.Resource, name: string, input: NatsDnsRecordsInput): void {
    const domainId = linode.getDomainOutput({ domain: input.dnsDomain }, { parent }).apply((d) => Number(d.id));
    input.nodes.forEach((node, i) => {
        const ip = input.meshNodes[i].ipv4s.apply((ips) => selectPublicIpv4(ips, undefined, "a NATS DNS record"));
        new linode.DomainRecord(`${name}-${node.index}-dns`, { domainId, recordType: "A", name: node.hostname, target: ip, ttlSec: 300 }, { parent });
        new linode.DomainRecord(`${name}-${node.index}-service-dns`, { domainId, recordType: "A", name: input.clusterName.toLowerCase(), target: ip, ttlSec: 300 }, { parent });
    });
}
