#!/usr/bin/perl
# Verifies every DKIM signature of the message on standard input with Mail::DKIM (Debian's
# libmail-dkim-perl), an implementation independent of libopendkim. DNS is not used: the
# TXT records come from the file named as the only argument, one per line,
# "selector._domainkey.domain<TAB>record text" (what `truefrom dkim dns` printed).
# Prints one line per signature: "RESULT d=DOMAIN s=SELECTOR a=ALGORITHM (DETAIL)".
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS;

package FileResolver;
sub new { my ($class, %records) = @_; return bless { records => \%records, error => 'NOERROR' }, $class; }
sub send {
    my ($self, $name, $type) = @_;
    my $packet = Net::DNS::Packet->new($name, $type);
    $packet->header->qr(1);
    my $text = $self->{records}{lc $name};
    if (defined $text && uc $type eq 'TXT') {
        my @strings = unpack('(A255)*', $text);
        $packet->push(answer => Net::DNS::RR->new(name => $name, type => 'TXT', txtdata => [@strings]));
        $packet->header->rcode('NOERROR');
    } else {
        $packet->header->rcode('NXDOMAIN');
    }
    return $packet;
}
sub errorstring { return $_[0]{error}; }

package main;

my %records;
open(my $fh, '<', $ARGV[0]) or die "cannot read $ARGV[0]: $!";
while (my $line = <$fh>) {
    chomp $line;
    my ($name, $text) = split(/\t/, $line, 2);
    $records{lc $name} = $text;
}
close($fh);
Mail::DKIM::DNS::resolver(FileResolver->new(%records));

binmode STDIN;
my $dkim = Mail::DKIM::Verifier->new();
while (my $chunk = <STDIN>) {
    $dkim->PRINT($chunk);
}
$dkim->CLOSE;
for my $sig ($dkim->signatures) {
    printf "%s d=%s s=%s a=%s (%s)\n", $sig->result, $sig->domain, $sig->selector,
        $sig->algorithm, $sig->result_detail;
}
