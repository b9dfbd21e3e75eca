// Command line of truefrom-loadgen: what to load, how hard, and the idle-connection test.
// Every refusal names the option, what was wrong and how to fix it.
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace truefrom::bench {

enum class TlsMode { kNone, kStartTls, kImplicit };

const char* to_string(TlsMode mode);

struct LoadgenOptions {
  // where
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0 until parsed: 587, or 465 with --tls implicit
  TlsMode tls = TlsMode::kStartTls;
  std::string helo = "loadgen.example.test";
  // who
  std::string user;  ///< empty: no AUTH
  std::string password;
  std::string from;  ///< envelope sender and From: header
  std::string to;
  // how much
  unsigned connections = 8;
  unsigned messages_per_conn = 1;
  std::size_t size = 4096;             ///< body octets, CRLF line ends included
  std::optional<std::uint64_t> total;  ///< stop after this many messages...
  std::optional<double> duration;      ///< ...or after this many seconds (what comes first)
  double timeout = 30;                 ///< seconds for any one step
  unsigned threads = 1;
  std::uint64_t max_errors = 100;  ///< stop the run after this many failed sessions
  // idle-connection test
  std::optional<unsigned> idle;   ///< open this many connections and hold them
  std::optional<int> server_pid;  ///< whose VmRSS to read
  bool idle_tls = false;          ///< STARTTLS + EHLO on each idle connection too
  unsigned idle_parallel = 64;    ///< connections being opened at once
  double idle_settle = 2;         ///< seconds between the last open and the RSS reading
  double idle_hold = 0;           ///< seconds to keep them open after the reading
};

struct LoadgenCommandLine {
  std::optional<LoadgenOptions> options;  ///< absent on error or --help
  std::string error;                      ///< what is wrong and how to fix it
  bool help = false;
};

LoadgenCommandLine parse_loadgen_options(int argc, char** argv);

/// The --help text.
extern const char* const kLoadgenUsage;

}  // namespace truefrom::bench
