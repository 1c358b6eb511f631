# What up.sh puts into the compose cluster and what matrix.sh expects of it (sourced, not
# run). Change both here: the expectation is written from the same policy.

# The address layout (the MISSION example): 10.0.0.0/8, 8 host bits of which 2 number
# racks, 4 tenant bits, 4 segment bits, 8 endpoint bits.
LAYOUT=(--address-space 10.0.0.0/8 --host-bits 8 --rack-bits 2 --tenant-bits 4 --segment-bits 4)

# Tenants and their segments besides `default` (every tenant has it).
TENANTS=("shop web" "lb")

# Endpoints: name host tenant segment. Both tenants on both racks.
ENDPOINTS=(
    "w1 r0h0 shop web"
    "w2 r1h1 shop web"
    "d1 r1h0 shop default"
    "l1 r0h1 lb default"
    "l2 r1h0 lb default"
)

# Romana-form policies, which only add allows to the baseline (segment isolation, the
# default mode): lb may open TCP 80 on shop's web segment; ingress and egress both.
POLICY='name: web-from-lb
direction: ingress
applied_to: [{tenant: shop, segment: web}]
peers: [{tenant: lb}]
rules: [{protocol: tcp, ports: [80]}]
---
name: lb-to-web
direction: egress
applied_to: [{tenant: lb}]
peers: [{tenant: shop, segment: web}]
rules: [{protocol: tcp, ports: [80]}]'

# What matrix.sh sends from every endpoint to every other one; every endpoint serves TCP 80
# and 81.
PROBES=(icmp tcp/80 tcp/81)
TCP_PORTS=(80 81)

# expect SRC_TENANT SRC_SEGMENT DST_TENANT DST_SEGMENT PROBE: prints allow or deny, from the
# policy above: the same tenant and segment talk (segment isolation); lb -> shop/web on
# TCP 80 (web-from-lb with lb-to-web); nothing else.
expect() {
    local st="$1" ss="$2" dt="$3" ds="$4" probe="$5"
    if [ "$st" = "$dt" ] && [ "$ss" = "$ds" ]; then
        echo allow
    elif [ "$st" = lb ] && [ "$dt" = shop ] && [ "$ds" = web ] && [ "$probe" = tcp/80 ]; then
        echo allow
    else
        echo deny
    fi
}
