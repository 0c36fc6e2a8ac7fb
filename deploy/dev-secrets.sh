#!/usr/bin/env bash
# Development keys and certificates for the compose trial (deploy/compose.yaml), never for production.
#
#   deploy/dev-secrets.sh [DIR]      # default: deploy/.dev-secrets (git-ignored); existing files are kept
#
# Makes, with openssl only:
#   ca.crt ca.key               a development CA standing in for the hall CA (clients chain to it),
#                               for the issuer of the server certificate and for billing's CA
#   server.crt server.key       the gateways' certificate: gateway-1, gateway-2, localhost, 127.0.0.1
#   billing-sim.crt/.key        the billing simulator's server certificate: billing-sim, localhost,
#                               127.0.0.1 (the gateways check it against ca.crt)
#   billing-client.crt/.key     the gateways' client certificate for billing's mutual TLS:
#                               gateway-1, gateway-2 (the simulator's --tls-client-ca is ca.crt)
#   <terminal>.crt/.key         demo client certificates with SPIFFE URI SANs (TRUST_DOMAIN, default
#                               hallgate.test): kiosk, clerk, legal and audit terminals
#   signing-key.pem signing.pub the Ed25519 key for legal delivery manifests and its public half
#   keys.env                    HALLGATE_SECRET_KEY and HALLGATE_AUDIT_HMAC_KEY (random, 256 bits)
#   smsc-password               the SMPP bind password of the SMSC simulator and the gateways
#                               (8 random hex characters: SMPP 3.4 allows at most 8)
# The files are mode 0644 so the container's uid 10001 can read the bind mounts; the directory is 0700.
set -euo pipefail

DIR=${1:-"$(cd "$(dirname "$0")" && pwd)/.dev-secrets"}
TRUST_DOMAIN=${TRUST_DOMAIN:-hallgate.test}
DAYS=${DAYS:-365}
TERMINALS=(
  "kiosk-H001-K01 hall/H001/kiosk/K01"
  "clerk-H001-T07 hall/H001/clerk/T07"
  "legal-B01-L01 branch/B01/legal/L01"
  "audit-B01-A01 branch/B01/audit/A01"
)

umask 022
mkdir -p "$DIR"
chmod 0700 "$DIR"
cd "$DIR"

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [ ! -f ca.crt ]; then
  ec_key ca.key
  openssl req -x509 -new -key ca.key -sha256 -days $((DAYS * 10)) -subj "/CN=hallgate development hall CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
fi

# leaf NAME SAN EKU
leaf() {
  [ -f "$1.crt" ] && return 0
  ec_key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
    "$3" "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days "$DAYS" \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

leaf server "DNS:gateway-1,DNS:gateway-2,DNS:localhost,IP:127.0.0.1" serverAuth
leaf billing-sim "DNS:billing-sim,DNS:localhost,IP:127.0.0.1" serverAuth
# No SPIFFE URI: the gateways would not take it for a terminal (ca.crt is their hall CA too).
leaf billing-client "DNS:gateway-1,DNS:gateway-2" clientAuth
for t in "${TERMINALS[@]}"; do
  set -- $t
  leaf "$1" "URI:spiffe://$TRUST_DOMAIN/$2" clientAuth
done

if [ ! -f signing-key.pem ]; then
  openssl genpkey -algorithm ed25519 -out signing-key.pem
  openssl pkey -in signing-key.pem -pubout -out signing.pub
fi

if [ ! -f keys.env ]; then
  {
    echo "HALLGATE_SECRET_KEY=$(openssl rand -hex 32)"
    echo "HALLGATE_AUDIT_HMAC_KEY=$(openssl rand -hex 32)"
  } > keys.env
fi

if [ ! -f smsc-password ]; then
  openssl rand -hex 4 > smsc-password
fi

chmod 0644 ./*.crt ./*.key signing-key.pem signing.pub keys.env smsc-password
chmod 0600 ca.key ca.srl   # the CA key is never mounted
echo "development secrets in $DIR (trust domain $TRUST_DOMAIN)"
