#!/usr/bin/env bash
# Make tests/vectors/scp10/openssl.json: SCP10 vectors (GP Card Specification 2.2.1, Appendix F) whose expected
# bytes come from the OpenSSL command line (RSA, SHA-1, DES/3DES), xxd and bc, never from gpchannel.
# Inputs are random (openssl genrsa / openssl rand); the committed JSON records one run.
# Usage: bash tests/vectors/scp10/make_vectors.sh > tests/vectors/scp10/openssl.json
set -euo pipefail
export BC_LINE_LENGTH=0
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
P="-provider legacy -provider default"
SRC="openssl $(openssl version | cut -d' ' -f2) command line (tests/vectors/scp10/make_vectors.sh)"

hex() { xxd -p -c 100000 | tr -d '\n' | tr a-f A-F; }
unhex() { tr -d ' \n' | xxd -r -p; }
rnd() { openssl rand -hex "$1" | tr a-f A-F; }
sha1() { printf %s "$1" | unhex | openssl dgst -sha1 -binary | hex; }
len() { printf '%02X' $(( ${#1} / 2 )); }                 # one-byte BER length of a hex string
tlv() { printf '%s%s%s' "$1" "$(len "$2")" "$2"; }
priv_raw() { printf %s "$2" | unhex | openssl pkeyutl -decrypt -inkey "$W/$1.pem" -pkeyopt rsa_padding_mode:none | hex; }
pub_raw() { printf %s "$2" | unhex | openssl pkeyutl -encrypt -pubin -inkey "$W/$1.pub" -pkeyopt rsa_padding_mode:none | hex; }
sign_sha1() { printf %s "$2" | unhex | openssl dgst -sha1 -sign "$W/$1.pem" | hex; }
modulus() { openssl rsa -in "$W/$1.pem" -noout -modulus | cut -d= -f2; }
pem() { awk '{printf "%s\\n", $0}' "$W/$1.pem"; }
pad80() { local d="$1"80; while (( ${#d} % 16 )); do d="$d"00; done; printf %s "$d"; }
# min(S, N - S) on a 128-byte block, in bc
min_n() { local r; r=$(echo "obase=16; ibase=16; s=$2; t=$1-s; if (s<t) s else t" | bc); printf '%0256s' "$r" | tr ' ' 0; }
xor() { local a=$1 b=$2 o="" i; for ((i = 0; i < ${#a}; i += 2)); do o+=$(printf '%02X' $(( 16#${a:i:2} ^ 16#${b:i:2} ))); done; printf %s "$o"; }
des_ecb() { printf %s "$2" | unhex | openssl enc -des-ecb -K "$1" -nopad $P | hex; }
des_ecb_d() { printf %s "$2" | unhex | openssl enc -d -des-ecb -K "$1" -nopad $P | hex; }
tdes_cbc() { printf %s "$2" | unhex | openssl enc -des-ede-cbc -K "$1" -iv 0000000000000000 -nopad $P | hex; }
# F.2.3 + B.1.2.2: ICV = DES(K1, counter); single DES CBC under K1, then DES^-1 K2 and DES K1 on the last block
mac() {
  local k=$1 ctr=$2 data; data=$(pad80 "$3")
  local icv; icv=$(des_ecb "${k:0:16}" "$ctr")
  local h; h=$(printf %s "$data" | unhex | openssl enc -des-cbc -K "${k:0:16}" -iv "$icv" -nopad $P | hex)
  h=${h: -16}
  des_ecb "${k:0:16}" "$(des_ecb_d "${k:16:16}" "$h")"
}

for k in card oce tpex; do
  openssl genrsa -out "$W/$k.pem" 1024 2>/dev/null
  openssl rsa -in "$W/$k.pem" -pubout -out "$W/$k.pub" 2>/dev/null
done
NCARD=$(modulus card); NOCE=$(modulus oce)

case_() { printf '  {"source": "%s", "kind": "%s",\n   "inputs": %s,\n   "expected": %s,\n   "notes": "%s"}' \
  "$SRC" "$1" "$2" "$3" "$4"; }

echo "["
# 1. Key transport session key data (Table F-32) and PSO [decipher] cryptogram (F.4.6.3, RSAES-PKCS1-v1_5).
LEVEL=33; KMAC=$(rnd 16); KENC=$(rnd 16); KDEK=$(rnd 16); CTR=$(rnd 8)
CRT1=$(tlv B4 "950130D110${KMAC}9108${CTR}")
CRT2=$(tlv B8 "950130D110${KENC}")
CRT3=$(tlv B8 "9501C0D110${KDEK}")
SKD="D30133${CRT1}${CRT2}${CRT3}"
PADLEN=$(( 128 - 3 - ${#SKD} / 2 ))
BLOCK="0002$(printf 'FF%.0s' $(seq 1 $PADLEN))00${SKD}"
CRYPT=$(pub_raw card "$BLOCK")
BACK=$(printf %s "$CRYPT" | unhex | openssl pkeyutl -decrypt -inkey "$W/card.pem" -pkeyopt rsa_padding_mode:pkcs1 | hex)
[ "$BACK" = "$SKD" ] || { echo "openssl does not accept the Table F-32 block" >&2; exit 1; }
case_ pso_decipher \
  "{\"card_key\": \"$(pem card)\", \"level\": \"$LEVEL\", \"mac_key\": \"$KMAC\", \"mac_counter\": \"$CTR\", \"enc_key\": \"$KENC\", \"dek\": \"$KDEK\"}" \
  "{\"session_key_data\": \"$SKD\", \"block\": \"$BLOCK\", \"cryptogram\": \"$CRYPT\"}" \
  "Table F-32 block 00 02 FF.. 00 D3 01 SL CRTs (B4/30 MAC key+counter, B8/30 ENC key, B8/C0 DEK), raw RSA with PK.SD; openssl pkeyutl -decrypt (PKCS#1 v1.5) recovers the session key data"
echo ","
# 2. Off-card entity signature, key transport (Tables F-7, F-8): RSASSA-PKCS1-v1_5 SHA-1.
CCH=$(rnd 16)
SIG=$(sign_sha1 oce "${SKD}${CCH}")
case_ oce_signature_transport \
  "{\"oce_key\": \"$(pem oce)\", \"session_key_data\": \"$SKD\", \"card_challenge\": \"$CCH\"}" \
  "{\"signature\": \"$SIG\"}" "openssl dgst -sha1 -sign over D3 01 SL || CRTs (with keys) || card challenge"
echo ","
# 3. Card signature, key transport (Tables F-3, F-4).
OCH=$(rnd 16)
SIG=$(sign_sha1 card "${KMAC}${KENC}${KDEK}${OCH}")
case_ card_signature_transport \
  "{\"card_key\": \"$(pem card)\", \"session_keys\": \"${KMAC}${KENC}${KDEK}\", \"oce_challenge\": \"$OCH\"}" \
  "{\"signature\": \"$SIG\"}" "openssl dgst -sha1 -sign over the session keys in CRT order || off-card challenge"
echo ","
# 4. Off-card entity signature, key agreement (Tables F-9, F-10; ISO/IEC 9796-2 DS1), encrypted with PK.SD.
SKDA="D30113$(tlv B4 950130)$(tlv B8 950130)$(tlv B8 9501C0)"
OES=$(rnd 32); CCH8=$(rnd 8); CARDID=$(rnd 8)
RPDLEN=$(( 128 - 22 - ${#SKDA} / 2 - 32 ))
RPD=$(rnd $RPDLEN)
M1="${RPD}${SKDA}${OES}"
H=$(sha1 "${M1}${CCH8}${CARDID}")
BLK="6A${M1}${H}BC"
S=$(priv_raw oce "$BLK")
SIGMA=$(min_n "$NOCE" "$S")
ENC=$(pub_raw card "$SIGMA")
case_ oce_signature_agreement \
  "{\"oce_key\": \"$(pem oce)\", \"card_key\": \"$(pem card)\", \"rpd\": \"$RPD\", \"session_key_data\": \"$SKDA\", \"oes\": \"$OES\", \"card_challenge\": \"$CCH8\", \"card_id\": \"$CARDID\"}" \
  "{\"block\": \"$BLK\", \"sigma\": \"$SIGMA\", \"encrypted\": \"$ENC\"}" \
  "block 6A RPD D3 01 SL CRTs OES SHA1(M) BC, S = raw RSA with SK.OCE (pkeyutl padding none), sigma = min(S, N-S) with bc, encrypted = raw RSA with PK.SD"
echo ","
# 5. Card signature, key agreement (Tables F-5, F-6), encrypted with PK.OCE.
CS=$(rnd 32); OCH8=$(rnd 8); OCEID=$(rnd 8)
RP=$(rnd $(( 128 - 54 )))
H=$(sha1 "${RP}${CS}${OCH8}${OCEID}")
BLK="6A${RP}${CS}${H}BC"
S=$(priv_raw card "$BLK")
SIGMA=$(min_n "$NCARD" "$S")
ENC=$(pub_raw oce "$SIGMA")
case_ card_signature_agreement \
  "{\"card_key\": \"$(pem card)\", \"oce_key\": \"$(pem oce)\", \"rp\": \"$RP\", \"cs\": \"$CS\", \"oce_challenge\": \"$OCH8\", \"oce_id\": \"$OCEID\"}" \
  "{\"block\": \"$BLK\", \"sigma\": \"$SIGMA\", \"encrypted\": \"$ENC\"}" \
  "block 6A RP CS SHA1(RP CS challenge id) BC, raw RSA with SK.SD, min(S, N-S), raw RSA with PK.OCE"
echo ","
# 6. Key agreement session keys (F.3.1.3, Table F-12) and the initial ICV counter (F.2.3).
X=$(xor "$OES" "$CS")
K1=$(sha1 "${X}00000001"); K2=$(sha1 "${X}00000002"); K5=$(sha1 "${X}00000005")
case_ agreement_keys \
  "{\"oes\": \"$OES\", \"cs\": \"$CS\", \"crts\": \"$SKDA\"}" \
  "{\"mac_key\": \"${K1:0:32}\", \"enc_key\": \"${K2:0:32}\", \"dek\": \"${K5:0:32}\", \"counter\": \"${CS: -8}${OES: -8}\"}" \
  "SHA-1((OES xor CS) || counter32)[:16]: 1 first MAC CRT, 2 first ENC CRT, 5 first DEK CRT; counter CS[-4:] || OES[-4:]"
echo ","
# 7. C-MAC command protection (F.3.2.1): CLA 81 (channel 1), data and Le.
KM=$(rnd 16); CT=$(rnd 8); DATA=$(rnd 21)
BODY="$(tlv 81 "$DATA")970100"
M=$(mac "$KM" "$CT" "80E2000080000000${BODY}")
PROT="8DE20000$(len "${BODY}8E08${M}")${BODY}8E08${M}00"
case_ command_cmac \
  "{\"level\": \"01\", \"mac_key\": \"$KM\", \"counter\": \"$CT\", \"command\": \"81E20000$(len "$DATA")${DATA}00\"}" \
  "{\"protected\": \"$PROT\"}" "MAC input: CLA with channel bits zero, INS P1 P2, 80 00 00 00, 81 L data, 97 01 Le, 80-padded; ICV = DES-ECB(K1, counter); single DES CBC then DES^-1(K2), DES(K1)"
echo ","
# 8. C-ENC + C-MAC (F.3.2.3).
KE=$(rnd 16); DATA=$(rnd 13)
CIPH=$(tdes_cbc "$KE" "$(pad80 "$DATA")")
BODY="$(tlv 87 "01${CIPH}")"
M=$(mac "$KM" "$CT" "80E2000080000000${BODY}")
PROT="8CE20000$(len "${BODY}8E08${M}")${BODY}8E08${M}"
case_ command_cenc_cmac \
  "{\"level\": \"03\", \"mac_key\": \"$KM\", \"enc_key\": \"$KE\", \"counter\": \"$CT\", \"command\": \"80E20000$(len "$DATA")${DATA}\"}" \
  "{\"protected\": \"$PROT\"}" "3DES-CBC (openssl des-ede-cbc, ICV zero) of the 80-padded data in 87 01||ct; C-MAC over header 80000000 87"
echo ","
# 9. C-ENC only (F.3.2.2): tag 86 and Le in 96, CLA b4-b3 = 10.
PROT="88E20000$(len "$(tlv 86 "01${CIPH}")960100")$(tlv 86 "01${CIPH}")96010000"
case_ command_cenc \
  "{\"level\": \"02\", \"enc_key\": \"$KE\", \"command\": \"80E20000$(len "$DATA")${DATA}00\"}" \
  "{\"protected\": \"$PROT\"}" "86 L 01||ct, 96 01 Le, CLA 88"
echo ","
# 10. R-MAC + R-ENC response (F.3.2.6) and R-MAC only (F.3.2.4).
KR=$(rnd 16); RC=$(rnd 8); RDATA=$(rnd 30)
RCIPH=$(tdes_cbc "$KE" "$(pad80 "$RDATA")")
RBODY="$(tlv 87 "01${RCIPH}")99029000"
M=$(mac "$KR" "$RC" "$RBODY")
RBODY2="$(tlv 81 "$RDATA")99029000"
M2=$(mac "$KR" "$RC" "$RBODY2")
case_ response_rmac_renc \
  "{\"level\": \"30\", \"rmac_key\": \"$KR\", \"renc_key\": \"$KE\", \"counter\": \"$RC\", \"data\": \"$RDATA\", \"sw\": \"9000\"}" \
  "{\"protected\": \"${RBODY}8E08${M}9000\", \"rmac_only\": \"${RBODY2}8E08${M2}9000\"}" \
  "87 01||ct, 99 02 SW, 8E 08 R-MAC (R-MAC ICV = DES-ECB(K1 of the R-MAC key, counter)); rmac_only at level 10 with the same counter"
echo ","
# 11. Self descriptive certificate without message recovery (F.1.3.4.1), signed by TP_EX.
NO=$(modulus oce)
CBODY="$(tlv 42 5450455800000001)$(printf 5F20)08$(printf 4F43450000000001)7F498188818180${NO}8203010001$(printf 5F25)06020600010102$(printf 5F24)06020700010102"
CSIG=$(sign_sha1 tpex "$CBODY")
CVAL="${CBODY}9E8180${CSIG}"
case_ certificate_self_descriptive \
  "{\"issuer_key\": \"$(pem tpex)\", \"subject_key\": \"$(pem oce)\", \"issuer\": \"5450455800000001\", \"subject\": \"4F43450000000001\", \"effective\": \"2026-01-12\", \"expiry\": \"2027-01-12\"}" \
  "{\"certificate\": \"7F2182$(printf '%04X' $(( ${#CVAL} / 2 )))${CVAL}\"}" \
  "7F21 { 42 issuer, 5F20 subject, 7F49 {81 n, 82 e}, 5F25 / 5F24 YYMMDD, 9E PKCS#1 v1.5 SHA-1 signature over the preceding TLVs }"
echo ","
# 12. Non self descriptive certificate with message recovery (F.1.3.4.2; ISO/IEC 9796-2 DS1, SHA-1), by TP_EX.
VALS="54504558000000014F4345000000000102060001010202070001010203010001${NO}"
M1=${VALS:0:212}; REM=${VALS:212}
H=$(sha1 "$VALS")
S=$(priv_raw tpex "6A${M1}${H}BC")
SIGMA=$(min_n "$(modulus tpex)" "$S")
case_ certificate_recovery_values \
  "{\"issuer_key\": \"$(pem tpex)\", \"subject_key\": \"$(pem oce)\", \"issuer\": \"5450455800000001\", \"subject\": \"4F43450000000001\", \"effective\": \"2026-01-12\", \"expiry\": \"2027-01-12\"}" \
  "{\"certificate\": \"7F2181BC5F3836${REM}9E8180${SIGMA}\"}" \
  "values issuer(8) subject(8) YYMMDD YYMMDD len(e) e n; first 106 bytes recovered from 6A M1 SHA1(all) BC signed raw by TP_EX, min(S, N-S) with bc; the other 54 in 5F38"
echo ","
# 13. Sensitive data under the DEK (F.3.2.7): 3DES ECB (key type omitted) and CBC (key type 82).
KD=$(rnd 16); SD=$(rnd 24)
ECB=$(printf %s "$SD" | unhex | openssl enc -des-ede -K "$KD" -nopad $P | hex)
CBC=$(tdes_cbc "$KD" "$SD")
case_ sensitive_data \
  "{\"dek\": \"$KD\", \"data\": \"$SD\"}" "{\"ecb\": \"$ECB\", \"cbc\": \"$CBC\"}" \
  "openssl des-ede (ECB) and des-ede-cbc with a zero ICV, no padding"
echo
echo "]"
