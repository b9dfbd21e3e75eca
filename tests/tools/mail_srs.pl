#!/usr/bin/perl
# The reference SRS implementation (Debian's libmail-srs-perl, Mail::SRS::Guarded) on the
# command line, for the cross-implementation tests:
#   mail_srs.pl forward DOMAIN ADDRESS SECRET [SECRET...]
#   mail_srs.pl reverse ADDRESS SECRET [SECRET...]
# Prints the result, or "ERROR reason" and exits 1. SRS_TIME=<unix seconds> fixes the clock.
use strict;
use warnings;
BEGIN {
    *CORE::GLOBAL::time = sub { defined $ENV{SRS_TIME} ? $ENV{SRS_TIME} : CORE::time() };
}
use Mail::SRS;

my $op = shift @ARGV or die "usage: see the header\n";
my ($domain, $address);
if ($op eq 'forward') {
    ($domain, $address) = splice(@ARGV, 0, 2);
} else {
    $address = shift @ARGV;
}
my $srs = Mail::SRS->new(Secret => [@ARGV], MaxAge => 21, HashLength => 4, HashMin => 4);
local $SIG{__WARN__} = sub { };    # "case insensitive hash match" is expected in some tests
my $out = eval { $op eq 'forward' ? $srs->forward($address, $domain) : $srs->reverse($address) };
if ($@) {
    my $why = $@;
    $why =~ s/ at \S+ line \d+.*//s;
    print "ERROR $why\n";
    exit 1;
}
print "$out\n";
