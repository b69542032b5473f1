import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { CertProfile, NATS_KEY, NATS_LEAF_EARLY_RENEWAL_HOURS, natsClientCaProfile, natsClientCertProfile, natsRouteCaProfile } from "../../cloudinit/natsCerts";

/** A certificate and its private key (the key always secret). */
export interface IssuedCertificate {
    certPem: pulumi.Output<string>;
    keyPem: pulumi.Output<string>;
}

/** What the servers prove themselves with: to each other (route password and route CA), and to clients (client CA). */
export interface NatsClusterCredentials {
    routePassword: pulumi.Output<string>;
    /** The system account user's password: the deploy's way to the JetStream meta group (scale-down). */
    systemPassword: pulumi.Output<string>;
    routeCa: IssuedCertificate;
    clientCa: IssuedCertificate;
}

export interface NatsClusterCredentialsInput {
    clusterName: string;
    /** An existing client CA, kept so that clients trusting it keep working; generated when unset. */
    clientCa?: { certPem: pulumi.Input<string>; keyPem: pulumi.Input<string> };
}

/** The route password, the system account's password, the route CA and the client CA: the deploy holds the CAs' keys, never a node's. */
export function natsClusterCredentials(parent: pulumi.Resource, name: string, input: NatsClusterCredentialsInput): NatsClusterCredentials {
    const password = new random.RandomPassword(`${name}-cluster-password`, {
        // Letters and digits: it goes into route URLs and nats.conf unescaped.
        length: 40, special: false,
    }, { parent });
    const systemPassword = new random.RandomPassword(`${name}-system-password`, {
        // Letters and digits: it goes into nats.conf unescaped.
        length: 40, special: false,
    }, { parent });
    const routeCa = selfSignedCa(parent, `${name}-route-ca`, natsRouteCaProfile(input.clusterName));
    const clientCa: IssuedCertificate = input.clientCa
        ? { certPem: pulumi.output(input.clientCa.certPem), keyPem: pulumi.secret(input.clientCa.keyPem) }
        : selfSignedCa(parent, `${name}-client-ca`, natsClientCaProfile(input.clusterName));
    return { routePassword: password.result, systemPassword: systemPassword.result, routeCa, clientCa };
}

/** How the deploy itself talks to the servers over the client port (the rejoin waits, the control-plane KV). */
export interface NatsDeployerAccess {
    /** The name every data-plane certificate carries: the deploy dials public IPs. */
    tlsServerName: string;
    caPem: pulumi.Output<string>;
    certPem: pulumi.Output<string>;
    keyPem: pulumi.Output<string>;
}

export interface NatsDeployerAccessInput {
    clusterName: string;
    serviceName: string;
    clientCa: IssuedCertificate;
}

/** The deploy's own client certificate, signed by the client CA. */
export function natsDeployerAccess(parent: pulumi.Resource, name: string, input: NatsDeployerAccessInput): NatsDeployerAccess {
    const deployer = leafCertificate(parent, `${name}-deployer`, natsClientCertProfile(`${input.clusterName}-deployer`), input.clientCa);
    return { tlsServerName: input.serviceName, caPem: input.clientCa.certPem, certPem: deployer.certPem, keyPem: deployer.keyPem };
}

/** A certificate for a request a node made: its key never leaves the node. Renewed early, reloaded by the agent. */
export function signNodeRequest(parent: pulumi.Resource, name: string, requestPem: pulumi.Output<string>, profile: CertProfile, issuer: IssuedCertificate): pulumi.Output<string> {
    return new tls.LocallySignedCert(name, {
        certRequestPem: requestPem,
        caCertPem: issuer.certPem,
        caPrivateKeyPem: issuer.keyPem,
        validityPeriodHours: profile.validityHours,
        earlyRenewalHours: NATS_LEAF_EARLY_RENEWAL_HOURS,
        allowedUses: profile.uses,
        setSubjectKeyId: true,
    }, { parent }).certPem;
}

function privateKey(parent: pulumi.Resource, name: string): tls.PrivateKey {
    // @pulumi/tls marks every private key output secret itself.
    return new tls.PrivateKey(name, { algorithm: NATS_KEY.algorithm, ecdsaCurve: NATS_KEY.ecdsaCurve }, { parent });
}

function selfSignedCa(parent: pulumi.Resource, name: string, profile: CertProfile): IssuedCertificate {
    const key = privateKey(parent, `${name}-key`);
    const cert = new tls.SelfSignedCert(name, {
        privateKeyPem: key.privateKeyPem,
        subject: { commonName: profile.commonName, organization: profile.organization },
        isCaCertificate: true,
        validityPeriodHours: profile.validityHours,
        allowedUses: profile.uses,
        setSubjectKeyId: true,
    }, { parent });
    return { certPem: cert.certPem, keyPem: pulumi.secret(key.privateKeyPem) };
}

function leafCertificate(parent: pulumi.Resource, name: string, profile: CertProfile, issuer: IssuedCertificate): IssuedCertificate {
    const key = privateKey(parent, `${name}-key`);
    const request = new tls.CertRequest(`${name}-csr`, {
        privateKeyPem: key.privateKeyPem,
        subject: { commonName: profile.commonName, organization: profile.organization },
        dnsNames: profile.dnsNames,
        ipAddresses: profile.ipAddresses,
    }, { parent });
    return { certPem: signNodeRequest(parent, name, request.certRequestPem, profile, issuer), keyPem: pulumi.secret(key.privateKeyPem) };
}
