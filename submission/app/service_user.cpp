#include "submission/app/service_user.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace truefrom::app {

namespace fs = std::filesystem;

namespace {

std::string create_command(const std::string& name) {
  return "useradd --system --user-group --home-dir /var/lib/truefrom --no-create-home "
         "--shell /usr/sbin/nologin " +
         name;
}

bool chown_one(const fs::path& p, const ServiceUser& user, std::string& error) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) {
    if (errno == ENOENT) return true;  // gone meanwhile (a spool file delivered)
    error = "cannot read " + p.string() + ": " + std::strerror(errno);
    return false;
  }
  if (st.st_uid == user.uid && st.st_gid == user.gid) return true;
  if (::lchown(p.c_str(), user.uid, user.gid) != 0) {
    error = "cannot hand " + p.string() + " to user " + user.name + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace

std::optional<ServiceUser> service_user(const Config& config, std::string& error) {
  ServiceUser u;
  if (::geteuid() != 0 || config.run_as_root) {
    u.uid = ::geteuid();
    u.gid = ::getegid();
    const passwd* pw = ::getpwuid(u.uid);
    u.name = pw != nullptr ? pw->pw_name : std::to_string(u.uid);
    return u;
  }
  errno = 0;
  const passwd* pw = ::getpwnam(config.user.c_str());
  if (pw == nullptr) {
    error = "[server] user \"" + config.user +
            "\" does not exist: truefrom started as root runs as that user once its ports are "
            "bound. Create it with: " +
            create_command(config.user) +
            " (contrib/install-deps does), or name another user in [server] user";
    return std::nullopt;
  }
  if (pw->pw_uid == 0) {
    error = "[server] user \"" + config.user +
            "\" is root: name an unprivileged user, or set [server] run_as_root = true to "
            "serve as root knowingly";
    return std::nullopt;
  }
  u.name = pw->pw_name;
  u.uid = pw->pw_uid;
  u.gid = pw->pw_gid;
  u.drop = true;
  return u;
}

std::string embedded_cluster_user(const Config& config) {
  return config.run_as_root ? "postgres" : config.user;
}

bool hand_over(const fs::path& path, const ServiceUser& user, bool recursive, std::string& error) {
  if (!user.drop) return true;
  if (!chown_one(path, user, error)) return false;
  if (!recursive) return true;
  std::error_code ec;
  fs::recursive_directory_iterator it(path, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!chown_one(it->path(), user, error)) return false;
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    error =
        "cannot walk " + path.string() + " to hand it to user " + user.name + ": " + ec.message();
    return false;
  }
  return true;
}

bool drop_privileges(const ServiceUser& user, std::string& error) {
  if (!user.drop) return true;
  const auto failed = [&](const char* what) {
    error = std::string("cannot become user ") + user.name + " (" + what +
            "): " + std::strerror(errno) +
            "; truefrom does not serve as root unless [server] "
            "run_as_root = true";
    return false;
  };
  if (::initgroups(user.name.c_str(), user.gid) != 0) return failed("initgroups");
  if (::setresgid(user.gid, user.gid, user.gid) != 0) return failed("setresgid");
  if (::setresuid(user.uid, user.uid, user.uid) != 0) return failed("setresuid");
  // No way back: a process that could still become root has not given it up.
  if (::setuid(0) == 0 || ::seteuid(0) == 0) {
    errno = EPERM;
    return failed("root could be regained");
  }
  if (::getuid() != user.uid || ::geteuid() != user.uid || ::getgid() != user.gid ||
      ::getegid() != user.gid) {
    errno = EPERM;
    return failed("ids did not change");
  }
  return true;
}

}  // namespace truefrom::app
