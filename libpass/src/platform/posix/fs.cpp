#include "platform/fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "pass/collector.hpp"

namespace pass::platform {
namespace {

std::string describeErrno(int err) { return std::generic_category().message(err); }

std::unexpected<Error> ioError(int err, std::string_view what, const std::filesystem::path& p) {
  return fail(err == ENOENT || err == ENOTDIR ? "not_found" : "io_error",
              fmt::format("{} {}: {}", what, displayPath(p), describeErrno(err)));
}

/// Owns a file descriptor; close errors surface only through closeChecked().
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  /// Closes now and reports the error (NFS reports write errors only at close). Linux frees the
  /// descriptor even when close() fails with EINTR, so it is never retried.
  int closeChecked() {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) == 0 || errno == EINTR) return 0;
    return errno;
  }

 private:
  int fd_;
};

int openRetry(const char* path, int flags, mode_t mode = 0) {
  int fd;
  do {
    fd = ::open(path, flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

int fsyncRetry(int fd) {
  int rc;
  do {
    rc = ::fsync(fd);
  } while (rc != 0 && errno == EINTR);
  return rc == 0 ? 0 : errno;
}

int writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

/// ".tmp-<name>.<pid>-<counter>-<random>": unique across threads, processes and a pid reused
/// after a crash, and recognisable so that owners of a directory can delete leftovers.
std::filesystem::path tempPathFor(const std::filesystem::path& path) {
  static std::atomic<std::uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto name = fmt::format("{}{}.{}-{}-{:016x}", kTempPrefix, path.filename().string(), ::getpid(),
                          counter.fetch_add(1), rng());
  return path.parent_path() / name;
}

std::filesystem::path directoryOf(const std::filesystem::path& path) {
  auto dir = path.parent_path();
  return dir.empty() ? std::filesystem::path(".") : dir;
}

}  // namespace

Status writeFileAtomic(const std::filesystem::path& path, std::string_view data, bool privateFile) {
  std::filesystem::path temp;
  int fd = -1;
  // A name collision is practically impossible, but EEXIST must not be fatal if it happens.
  for (int attempt = 0; attempt < 8; ++attempt) {
    temp = tempPathFor(path);
    fd = openRetry(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL, privateFile ? 0600 : 0666);
    if (fd >= 0 || errno != EEXIST) break;
  }
  if (fd < 0) return ioError(errno, "cannot create temporary file", temp);
  UniqueFd file(fd);
  // Removes the temp file on every failure path below.
  struct TempGuard {
    const std::filesystem::path& p;
    bool armed = true;
    ~TempGuard() {
      if (armed) ::unlink(p.c_str());
    }
  } guard{temp};

  // The umask may not strip group/other bits as we need; fchmod makes 0600 exact.
  if (privateFile && ::fchmod(file.get(), 0600) != 0) {
    return ioError(errno, "cannot restrict permissions of", temp);
  }
  if (int err = writeAll(file.get(), data)) return ioError(err, "cannot write", temp);
  if (int err = fsyncRetry(file.get())) return ioError(err, "cannot fsync", temp);
  if (int err = file.closeChecked()) return ioError(err, "cannot close", temp);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int err = errno;
    return fail(err == ENOENT ? "not_found" : "io_error",
                fmt::format("cannot rename {} to {}: {}", displayPath(temp), displayPath(path),
                            describeErrno(err)));
  }
  guard.armed = false;
  return syncDirectory(directoryOf(path));
}

Status syncDirectory(const std::filesystem::path& dir) {
  int fd = openRetry(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return ioError(errno, "cannot open directory", dir);
  UniqueFd d(fd);
  int err = fsyncRetry(d.get());
  // Some file systems (e.g. certain network mounts) cannot fsync a directory and say EINVAL;
  // there is nothing more we can do there, and failing every write would make them unusable.
  if (err != 0 && err != EINVAL) return ioError(err, "cannot fsync directory", dir);
  return {};
}

Status renameDurable(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    int err = errno;
    return fail(err == ENOENT ? "not_found" : "io_error",
                fmt::format("cannot rename {} to {}: {}", displayPath(from), displayPath(to),
                            describeErrno(err)));
  }
  auto toDir = directoryOf(to);
  if (auto s = syncDirectory(toDir); !s) return s;
  // Across directories the source directory must be synced too, or after a power loss the file
  // could be found in both places.
  auto fromDir = directoryOf(from);
  if (fromDir == toDir) return {};
  return syncDirectory(fromDir);
}

namespace {

/// Everything left in `file` (opened from `path`, which messages name); "too_large" as soon as
/// it holds more than `maxBytes`.
Result<std::string> readOpened(const UniqueFd& file, const std::filesystem::path& path,
                               std::size_t maxBytes) {
  auto tooLarge = [&] {
    return fail("too_large",
                fmt::format("{} is larger than {} bytes", displayPath(path), maxBytes));
  };
  std::string out;
  struct stat st {};
  if (::fstat(file.get(), &st) == 0 && st.st_size > 0) {
    if (static_cast<std::uintmax_t>(st.st_size) > maxBytes) return tooLarge();
    out.reserve(static_cast<std::size_t>(st.st_size));
  }
  char buffer[64 * 1024];
  for (;;) {
    ssize_t n = ::read(file.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ioError(errno, "cannot read", path);
    }
    if (n == 0) return out;
    out.append(buffer, static_cast<std::size_t>(n));
    if (out.size() > maxBytes) return tooLarge();
  }
}

}  // namespace

Result<std::string> readFile(const std::filesystem::path& path) {
  int fd = openRetry(path.c_str(), O_RDONLY);
  if (fd < 0) return ioError(errno, "cannot open", path);
  return readOpened(UniqueFd(fd), path, std::numeric_limits<std::size_t>::max());
}

Result<std::string> readFileBeneath(const std::filesystem::path& folder,
                                    const std::filesystem::path& relative, std::size_t maxBytes) {
  namespace fs = std::filesystem;
  const fs::path shown = folder / relative;
  auto unsafe = [&](std::string_view why) {
    return fail("unsafe_path", fmt::format("{} {}", displayPath(shown), why));
  };
  std::error_code ec;
  const fs::path root = fs::canonical(folder, ec);
  if (ec) return ioError(ec.value(), "cannot resolve", folder);
  const fs::path target = fs::canonical(root / relative, ec);
  if (ec) return ioError(ec.value(), "cannot open", shown);
  const fs::path inside = target.lexically_relative(root);
  if (inside.empty() || inside == "." || *inside.begin() == "..") {
    return unsafe(fmt::format("resolves to {}, outside {}: it must be a file in that folder",
                              displayPath(target), displayPath(root)));
  }
  // From the folder down, no component may be a link now: what was resolved above is what is
  // opened, even if someone swaps a link in meanwhile.
  std::optional<UniqueFd> dir;
  int fd = openRetry(root.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return ioError(errno, "cannot open", root);
  dir.emplace(fd);
  const std::vector<fs::path> parts(inside.begin(), inside.end());
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const bool last = i + 1 == parts.size();
    const int flags =
        O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (last ? O_NONBLOCK | O_NOCTTY : O_DIRECTORY);
    do {
      fd = ::openat(dir->get(), parts[i].c_str(), flags);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
      return unsafe("changed while it was opened (a symbolic link was swapped in)");
    }
    if (fd < 0) return ioError(errno, "cannot open", shown);
    if (!last) dir.emplace(fd);
  }
  UniqueFd file(fd);
  struct stat st {};
  if (::fstat(file.get(), &st) != 0) return ioError(errno, "cannot stat", shown);
  if (!S_ISREG(st.st_mode)) {
    return unsafe("is not a regular file (a directory, FIFO, device or socket)");
  }
  return readOpened(file, shown, maxBytes);
}

Status makePrivate(const std::filesystem::path& path) {
  int rc;
  do {
    rc = ::chmod(path.c_str(), 0600);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return ioError(errno, "cannot set mode 0600 on", path);
  return {};
}

Status makePrivateDirectory(const std::filesystem::path& dir) {
  int rc;
  do {
    rc = ::chmod(dir.c_str(), 0700);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return ioError(errno, "cannot set mode 0700 on", dir);
  return {};
}

namespace {

// The collectors' view of the file system: readdir + fstatat for the listing, pread for reads.
class Dir {
 public:
  explicit Dir(DIR* d) : d_(d) {}
  Dir(const Dir&) = delete;
  Dir& operator=(const Dir&) = delete;
  ~Dir() {
    if (d_ != nullptr) ::closedir(d_);
  }
  DIR* get() const { return d_; }

 private:
  DIR* d_;
};

class PosixFileSystem final : public FileSystem {
 public:
  Result<std::vector<Entry>> list(const std::filesystem::path& dir) override {
    Dir d(::opendir(dir.c_str()));
    if (d.get() == nullptr) return ioError(errno, "cannot open directory", dir);
    std::vector<Entry> out;
    for (;;) {
      errno = 0;
      const dirent* ent = ::readdir(d.get());
      if (ent == nullptr) {
        if (errno != 0) return ioError(errno, "cannot read directory", dir);
        break;
      }
      std::string_view name = ent->d_name;
      if (name == "." || name == "..") continue;
      struct stat st {};
      // Follows symbolic links: a link to a log is the log.
      if (::fstatat(::dirfd(d.get()), ent->d_name, &st, 0) != 0) {
        if (errno == ENOENT) continue;  // deleted since readdir saw it
        return ioError(errno, "cannot stat", dir / ent->d_name);
      }
      if (!S_ISREG(st.st_mode)) continue;
      out.push_back(Entry{
          std::string(name),
          FileId{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)},
          static_cast<std::uint64_t>(st.st_size)});
    }
    return out;
  }

  Result<std::string> read(const std::filesystem::path& file, std::uint64_t offset,
                           std::size_t maxBytes) override {
    UniqueFd f(openRetry(file.c_str(), O_RDONLY));
    if (f.get() < 0) return ioError(errno, "cannot open", file);
    struct stat st {};
    if (::fstat(f.get(), &st) != 0) return ioError(errno, "cannot stat", file);
    const auto size = static_cast<std::uint64_t>(st.st_size);
    // Sized by what the file holds now, not by maxBytes: most reads are small.
    std::string out(offset < size ? std::min<std::uint64_t>(size - offset, maxBytes) : 0, '\0');
    std::size_t got = 0;
    while (got < out.size()) {
      ssize_t n =
          ::pread(f.get(), out.data() + got, out.size() - got, static_cast<off_t>(offset + got));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ioError(errno, "cannot read", file);
      }
      if (n == 0) break;  // truncated since fstat
      got += static_cast<std::size_t>(n);
    }
    out.resize(got);
    return out;
  }
};

}  // namespace

}  // namespace pass::platform

namespace pass {

FileSystem& realFileSystem() {
  static platform::PosixFileSystem fs;
  return fs;
}

}  // namespace pass
