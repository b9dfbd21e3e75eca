"""contrib/bench/stages.py: which stage a profiled sample's call chain belongs to.

Fed with `perf script -F comm,tid,time,ip,sym,dso` text in the shape perf 6.1 prints it
(a header line, one indented frame per line, leaf first, a blank line after each sample).
"""
import sys
import unittest
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "contrib" / "bench"))
import stages  # noqa: E402

CRYPTO = "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"
SSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
BIN = "/srv/truefrom/build/bench/truefrom"
KERNEL = "[kernel.kallsyms]"
# An Asio operation whose template arguments name a session's handler.
ASIO_OP = ("boost::asio::detail::executor_op<truefrom::net::on_workers_then<truefrom::net::"
           "(anonymous namespace)::Prepared, truefrom::net::Connection::State::data_end()::"
           "{lambda(auto:1)#1}>(boost::asio::thread_pool&)::{lambda(auto:1, auto:2)#1}, "
           "std::allocator<void> >::do_complete")


def sample(*frames, tid=100):
    lines = ["truefrom %d   791.396680: " % tid]
    for i, (sym, dso) in enumerate(frames):
        lines.append("\t%16x %s (%s)" % (0x1000 + i, sym, dso))
    return "\n".join(lines) + "\n\n"


# RSA inside the TLS handshake: the libcrypto leaf is the handshake's.
HANDSHAKE = sample(("[unknown]", CRYPTO), ("EVP_DigestSignFinal", CRYPTO),
                   ("[unknown]", SSL), ("SSL_do_handshake", SSL),
                   ("truefrom::net::TlsSocket::handshake[abi:cxx11]", BIN),
                   ("boost::asio::detail::scheduler::run", BIN))
# The same libcrypto function inside the DKIM signer is signing's.
SIGNING = sample(("[unknown]", CRYPTO), ("EVP_DigestSignFinal", CRYPTO),
                 ("truefrom::signer::DkimSigner::sign", BIN), (ASIO_OP, BIN),
                 ("boost::asio::detail::scheduler::run", BIN))
# Kernel time inside the spool's sync is the spool's.
SPOOL_SYNC = sample(("iowrite16", KERNEL), ("ext4_sync_file", KERNEL),
                    ("do_syscall_64", KERNEL), ("fdatasync", LIBC),
                    ("truefrom::queue::Spool::commit_loop", BIN), ("start_thread", LIBC))
# A wake-up in Asio's machinery, whose template arguments name a session's handler.
HAND_OFF = sample(("finish_task_switch.isra.0", KERNEL), ("futex_wait", KERNEL),
                  ("___pthread_cond_wait", LIBC), (ASIO_OP, BIN),
                  ("boost::asio::detail::scheduler::run", BIN))
# A chain that ends inside libcrypto's assembly names no stage.
LOST = sample(("[unknown]", CRYPTO), ("[unknown]", CRYPTO), ("[unknown]", "[unknown]"))
DATA = sample(("__memchr_evex", LIBC), ("truefrom::smtp::DataReceiver::consume", BIN),
              ("truefrom::smtp::Session::consume_data", BIN))
HEADERS = sample(("truefrom::smtp::parse_header_section", BIN),
                 ("truefrom::net::Connection::State::data_end", BIN))
AUTH = sample(("[unknown]", "/usr/lib/x86_64-linux-gnu/libcrypt.so.1.1.0"),
              ("crypt_rn", "/usr/lib/x86_64-linux-gnu/libcrypt.so.1.1.0"),
              ("truefrom::auth::verify_password", BIN), ("sasl_server_start",
                                                        "/usr/lib/x86_64-linux-gnu/libsasl2.so.2"))
RELAY = sample(("tcp_sendmsg", KERNEL), ("__libc_sendmsg", LIBC),
               ("truefrom::relay::RelayClient::Impl::transact", BIN))
# A plain send performed by Asio's reactor (greeting, replies before STARTTLS, the relay).
PLAIN_SEND = sample(("tcp_sendmsg", KERNEL), ("__libc_send", LIBC),
                    ("boost::asio::detail::reactive_socket_send_op_base<boost::asio::"
                     "const_buffers_1>::do_perform(boost::asio::detail::reactor_op*)", BIN),
                    ("boost::asio::detail::epoll_reactor::descriptor_state::do_complete", BIN),
                    ("boost::asio::detail::scheduler::run", BIN))
LOG = sample(("__GI___libc_write", LIBC), ("_IO_new_file_write", LIBC),
             ("truefrom::net::log(truefrom::net::LogLevel, std::basic_string_view<char, "
              "std::char_traits<char> >)", BIN),
             ("truefrom::net::Connection::State::data_end", BIN))
# A helper in spool.cpp's anonymous namespace writing a record is the spool's; the same kind
# of helper under the scheduler is delivery's.
PWRITE_ALL = ("truefrom::queue::(anonymous namespace)::pwrite_all(int, std::vector<iovec, "
              "std::allocator<iovec> >&, long, std::__cxx11::basic_string<char>&)")
SPOOL_WRITE = sample(("copy_folio_from_iter_atomic", KERNEL), ("ext4_buffered_write_iter", KERNEL),
                     ("__libc_pwrite64", LIBC), (PWRITE_ALL, BIN),
                     ("truefrom::queue::Spool::append", BIN),
                     ("truefrom::queue::Spool::write", BIN),
                     ("truefrom::queue::Spool::commit_loop", BIN), ("start_thread", LIBC))
SCHEDULER_HELPER = sample(("__memmove_avx512_unaligned_erms", LIBC),
                          ("truefrom::queue::(anonymous namespace)::describe(int)", BIN),
                          ("truefrom::queue::Scheduler::deliver", BIN))
RECORDS = sample(("_copy_to_iter", KERNEL), ("read", LIBC), ("[unknown]", SSL),
                 ("SSL_read_ex", SSL), ("truefrom::net::TlsSocket::read_some", BIN))


class Classify(unittest.TestCase):
    def stage_of(self, text):
        chains = list(stages.samples(text))
        self.assertEqual(len(chains), 1)
        return stages.classify(chains[0])

    def test_table(self):
        cases = [
            (HANDSHAKE, "TLS handshake"),
            (SIGNING, "signing"),
            (SPOOL_SYNC, "spool"),
            (HAND_OFF, "event loop and thread hand-offs"),
            (LOST, "other"),
            (DATA, "SMTP session"),
            (HEADERS, "policy and header parsing"),
            (AUTH, "AUTH"),
            (RELAY, "delivery (scheduler, relay client)"),
            (RECORDS, "TLS records"),
            (PLAIN_SEND, "plain socket I/O, accept, close"),
            (LOG, "logging"),
            (SPOOL_WRITE, "spool"),
            (SCHEDULER_HELPER, "delivery (scheduler, relay client)"),
        ]
        for text, want in cases:
            with self.subTest(want=want):
                self.assertEqual(self.stage_of(text), want)

    def test_bare_drops_template_arguments_and_parameters(self):
        self.assertEqual(stages.bare(ASIO_OP), "boost::asio::detail::executor_op::do_complete")
        self.assertEqual(stages.bare("truefrom::signer::DkimSigner::sign(std::vector<int> const&)"
                                     " const"), "truefrom::signer::DkimSigner::sign const")

    def test_samples_without_blank_lines_between_them(self):
        text = (HANDSHAKE + SIGNING).replace("\n\n", "\n")
        self.assertEqual([stages.classify(c) for c in stages.samples(text)],
                         ["TLS handshake", "signing"])


class SyscallCounts(unittest.TestCase):
    def test_perf_stat_csv(self):
        # `perf stat -x, -o FILE -e ...` as perf 6.1 writes it; events it cannot count
        # (no permission, unknown tracepoint) are left out.
        text = ("# started on Thu Dec  3 06:48:00 2026\n\n"
                "145,,raw_syscalls:sys_enter,1253290,100.00,,\n"
                "7,,syscalls:sys_enter_read,1253290,100.00,,\n"
                "0,,syscalls:sys_enter_fdatasync,1253290,100.00,,\n"
                "<not counted>,,syscalls:sys_enter_futex,0,0.00,,\n"
                "<not supported>,,syscalls:sys_enter_epoll_ctl,0,100.00,,\n")
        self.assertEqual(stages.syscall_counts(text), {"all": 145, "read": 7, "fdatasync": 0})
        self.assertEqual(stages.syscall_counts(""), {})

    def test_report_line(self):
        import compare_report
        self.assertEqual(compare_report.syscall_lines({"all": 40.0, "futex": 4.0, "read": 12.25,
                                                       "write": 0.0}),
                         ["System calls per message (perf stat, the same run): 40.0 in all; "
                          "read 12.2, futex 4.0.", ""])

    def test_events_name_every_listed_call(self):
        events = stages.perf_stat_events().split(",")
        self.assertEqual(events[0], "raw_syscalls:sys_enter")
        self.assertEqual([e.split("_", 2)[-1] for e in events[1:]], list(stages.SYSCALLS))


class Rows(unittest.TestCase):
    def test_shares_kernel_and_milliseconds(self):
        text = HANDSHAKE * 3 + SPOOL_SYNC * 2 + SIGNING * 4 + LOST
        counts, total = stages.breakdown(text)
        self.assertEqual(total, 10)
        self.assertEqual(counts["TLS handshake"], (3, 0))
        self.assertEqual(counts["spool"], (2, 2))
        got = {name: (share, ms, kernel) for name, share, ms, kernel in stages.rows(text, 2.0)}
        self.assertEqual(list(got), ["TLS handshake", "signing", "spool", "other"])  # STAGES order
        self.assertAlmostEqual(got["signing"][0], 0.4)
        self.assertAlmostEqual(got["signing"][1], 0.8)
        self.assertAlmostEqual(got["spool"][2], 1.0)
        self.assertAlmostEqual(got["other"][1], 0.2)
        self.assertIsNone(stages.rows(text, None)[0][2])

    def test_empty_profile(self):
        self.assertEqual(stages.rows("", 1.0), [])


if __name__ == "__main__":
    unittest.main()
