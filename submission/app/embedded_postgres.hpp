// The embedded default database: a private PostgreSQL cluster under <state>/pg, created with
// initdb and run with pg_ctl on a unix socket only (no TCP, no system service). PostgreSQL
// refuses to run as root, so as root the cluster runs as an unprivileged user: the one the
// server gives root up for ([server] user), so that the server can still reach and stop it
// afterwards ("postgres" when the server keeps root). Blocking; call before serving.
// Thread-safety: one owner.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace truefrom::app {

class EmbeddedPostgres {
 public:
  /// `root_runs_as`: the user the cluster runs as when this process is root.
  EmbeddedPostgres(std::filesystem::path state_dir, std::string root_runs_as);
  /// Stops the cluster if this object started it.
  ~EmbeddedPostgres();
  EmbeddedPostgres(const EmbeddedPostgres&) = delete;
  EmbeddedPostgres& operator=(const EmbeddedPostgres&) = delete;

  /// Creates the cluster on first use and starts it unless it is already running. On
  /// failure returns false with a message saying what to do.
  bool ensure_running(std::string& error);
  /// libpq connection string for the cluster.
  std::string conninfo() const;
  /// Stops the cluster if this object started it (`keep` leaves it running).
  void release(bool keep = false);

 private:
  std::filesystem::path dir_;
  std::filesystem::path data_;
  std::filesystem::path socket_dir_;
  std::filesystem::path log_;
  std::filesystem::path bin_;
  std::string root_runs_as_;
  std::optional<std::string> run_as_;
  bool started_here_ = false;
};

}  // namespace truefrom::app
