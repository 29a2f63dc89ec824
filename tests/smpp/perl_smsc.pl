#!/usr/bin/perl
# An SMS centre written with Net::SMPP (Debian's libnet-smpp-perl), an SMPP 3.4 implementation independent of
# gpchannel's, for the interop test of gpchannel's ESME (tests/smpp/test_interop.py). It listens on
# 127.0.0.1:PORT (0: any; it prints "listening PORT"), takes one ESME's bind_transceiver, answers each submit_sm
# with submit_sm_resp (message_id "perl1", "perl2", ...), then sends back a delivery receipt (esm_class 04, the
# receipted_message_id and message_state TLVs) and a PoR as deliver_sm (UDH 02 71 00, esm_class 40, PID 7F,
# DCS F6) whose secured data is the submitted short message's after its UDH. It prints one line per PDU it
# took and ends after the ESME's unbind.
use strict;
use warnings;
use Net::SMPP;

$| = 1;
my $port = shift @ARGV // 0;
my $listen = Net::SMPP->new_listen('127.0.0.1', port => $port, smpp_version => 0x34)
    or die "cannot listen on 127.0.0.1:$port: $!\n";
print "listening ", $listen->sockport, "\n";
my $smpp = $listen->accept or die "accept: $!\n";
my $ids = 0;
while (my $pdu = $smpp->read_pdu()) {
    my $cmd = $pdu->{cmd};
    if ($cmd == 0x00000009) {
        print "bind_transceiver system_id=$pdu->{system_id}\n";
        $smpp->bind_transceiver_resp(seq => $pdu->{seq}, system_id => 'perlsmsc');
    } elsif ($cmd == 0x00000004) {
        my $id = 'perl' . ++$ids;
        printf "submit_sm from=%s to=%s esm_class=%02X pid=%02X dcs=%02X rd=%d sm=%s\n",
            $pdu->{source_addr}, $pdu->{destination_addr}, $pdu->{esm_class}, $pdu->{protocol_id},
            $pdu->{data_coding}, $pdu->{registered_delivery}, unpack('H*', $pdu->{short_message});
        $smpp->submit_sm_resp(seq => $pdu->{seq}, message_id => $id);
        $smpp->deliver_sm(
            source_addr => $pdu->{destination_addr}, destination_addr => $pdu->{source_addr},
            esm_class => 0x04,
            short_message => "id:$id sub:001 dlvrd:001 submit date:2401010000 done date:2401010001 stat:DELIVRD err:000 text:",
            receipted_message_id => "$id\0", message_state => pack('C', 2), async => 1);
        my $data = substr($pdu->{short_message}, 1 + ord(substr($pdu->{short_message}, 0, 1)));
        $smpp->deliver_sm(
            source_addr => $pdu->{destination_addr}, destination_addr => $pdu->{source_addr},
            esm_class => 0x40, protocol_id => 0x7F, data_coding => 0xF6,
            short_message => "\x02\x71\x00" . $data, async => 1);
    } elsif ($cmd == 0x80000005) {
        print "deliver_sm_resp status=$pdu->{status}\n";
    } elsif ($cmd == 0x00000015) {
        $smpp->enquire_link_resp(seq => $pdu->{seq});
    } elsif ($cmd == 0x00000006) {
        print "unbind\n";
        $smpp->unbind_resp(seq => $pdu->{seq});
        last;
    } else {
        printf "generic_nack for command_id %08X\n", $cmd;
        $smpp->generic_nack(seq => $pdu->{seq}, status => 0x03);
    }
}
print "done\n";
