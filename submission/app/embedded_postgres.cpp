#include "submission/app/embedded_postgres.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "submission/app/process.hpp"

namespace truefrom::app {
namespace {

namespace fs = std::filesystem;
constexpr const char* kDatabase = "truefrom";
constexpr const char* kRole = "truefrom";
constexpr const char* kPort = "5432";  // only names the socket file inside our own directory

// The newest /usr/lib/postgresql/<version>/bin holding initdb.
fs::path find_postgres_bin() {
  fs::path best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = entry.path().filename().string();
    int version = 0;
    try {
      version = std::stoi(name);
    } catch (...) {
      continue;
    }
    if (version > best_version && fs::exists(entry.path() / "bin" / "initdb")) {
      best_version = version;
      best = entry.path() / "bin";
    }
  }
  return best;
}

}  // namespace

EmbeddedPostgres::EmbeddedPostgres(fs::path state_dir, std::string root_runs_as)
    : dir_(std::move(state_dir) / "pg"),
      data_(dir_ / "data"),
      socket_dir_(dir_ / "sock"),
      log_(dir_ / "postgres.log"),
      bin_(find_postgres_bin()),
      root_runs_as_(std::move(root_runs_as)) {}

EmbeddedPostgres::~EmbeddedPostgres() { release(); }

std::string EmbeddedPostgres::conninfo() const {
  return "host=" + socket_dir_.string() + " port=" + kPort + " dbname=" + kDatabase +
         " user=" + kRole;
}

bool EmbeddedPostgres::ensure_running(std::string& error) {
  if (bin_.empty()) {
    error =
        "no PostgreSQL server found under /usr/lib/postgresql (install postgresql-15, "
        "e.g. with contrib/install-deps), or set [database] url";
    return false;
  }
  std::error_code ec;
  fs::create_directories(socket_dir_, ec);
  fs::create_directories(data_, ec);
  if (ec) {
    error = "cannot create " + dir_.string() + ": " + ec.message() + " (check [state] dir)";
    return false;
  }
  if (geteuid() == 0) {
    const std::string& user = root_runs_as_;
    const passwd* pw = getpwnam(user.c_str());
    if (pw == nullptr) {
      error = "PostgreSQL will not run as root and there is no user \"" + user +
              "\" to run the embedded cluster" +
              (user == "postgres" ? std::string(" (install postgresql-15, which creates it)")
                                  : " (the [server] user; create it with: useradd --system "
                                    "--user-group --home-dir /var/lib/truefrom --no-create-home "
                                    "--shell /usr/sbin/nologin " +
                                        user + ")");
      return false;
    }
    run_as_ = user;
    // The cluster's files belong to the user it runs as: all of them, also when an earlier
    // version ran it as another user (PostgreSQL refuses a data directory it does not own).
    struct stat st {};
    const bool whole_tree = ::stat(data_.c_str(), &st) == 0 && st.st_uid != pw->pw_uid;
    if (!fs::exists(log_)) std::ofstream(log_.string()).close();
    std::vector<fs::path> paths{dir_, data_, socket_dir_, log_};
    if (whole_tree) {
      for (auto it = fs::recursive_directory_iterator(data_, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        paths.push_back(it->path());
      }
    }
    for (const auto& p : paths) {
      if (lchown(p.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        error = "cannot hand " + p.string() + " to user " + user + ": " + std::strerror(errno);
        return false;
      }
    }
    // The user must be able to reach the directory through every parent.
    if (run_program({"test", "-w", data_.string()}, run_as_, "/dev/null") != 0) {
      error = "user " + user + " cannot reach " + data_.string() +
              ": a parent directory is not traversable by other users. Put [state] dir under "
              "a directory such as /var/lib, or give parents mode o+x";
      return false;
    }
  }
  chmod(data_.c_str(), 0700);
  chmod(socket_dir_.c_str(), 0700);

  const bool fresh = !fs::exists(data_ / "PG_VERSION");
  if (fresh) {
    const int rc = run_program({(bin_ / "initdb").string(), "-D", data_.string(), "-U", kRole, "-A",
                                "trust", "-E", "UTF8", "--no-locale"},
                               run_as_, log_);
    if (rc != 0) {
      error = "initdb failed (exit " + std::to_string(rc) + "), see " + log_.string();
      return false;
    }
  }
  // Our settings, rewritten at every start: unix socket in our directory only.
  {
    std::ofstream conf(data_ / "truefrom.conf", std::ios::trunc);
    conf << "# written by truefrom at every start of the embedded cluster\n"
         << "listen_addresses = ''\n"
         << "unix_socket_directories = '" << socket_dir_.string() << "'\n"
         << "port = " << kPort << "\n"
         << "max_connections = 200\n";
  }
  if (fresh) {
    std::ofstream main_conf(data_ / "postgresql.conf", std::ios::app);
    main_conf << "\ninclude_if_exists = 'truefrom.conf'\n";
  }
  if (run_as_) {
    for (const char* f : {"truefrom.conf", "postgresql.conf"}) {
      const passwd* pw = getpwnam(run_as_->c_str());
      if (pw != nullptr) chown((data_ / f).c_str(), pw->pw_uid, pw->pw_gid);
    }
  }
  const auto pg_ctl = (bin_ / "pg_ctl").string();
  if (run_program({pg_ctl, "status", "-D", data_.string()}, run_as_, "/dev/null") != 0) {
    const int rc =
        run_program({pg_ctl, "start", "-D", data_.string(), "-l", log_.string(), "-w", "-t", "60"},
                    run_as_, log_);
    if (rc != 0) {
      error = "the embedded PostgreSQL did not start (pg_ctl exit " + std::to_string(rc) +
              "), see " + log_.string();
      return false;
    }
    started_here_ = true;
  }
  if (!fs::exists(dir_ / "database-created")) {
    const int rc = run_program({(bin_ / "createdb").string(), "-h", socket_dir_.string(), "-p",
                                kPort, "-U", kRole, kDatabase},
                               run_as_, log_);
    if (rc != 0) {
      error = "createdb failed (exit " + std::to_string(rc) + "), see " + log_.string();
      return false;
    }
    std::ofstream(dir_ / "database-created").close();
  }
  return true;
}

void EmbeddedPostgres::release(bool keep) {
  if (!started_here_ || keep) {
    started_here_ = false;
    return;
  }
  started_here_ = false;
  run_program({(bin_ / "pg_ctl").string(), "stop", "-D", data_.string(), "-m", "fast", "-w"},
              run_as_, log_);
}

}  // namespace truefrom::app
