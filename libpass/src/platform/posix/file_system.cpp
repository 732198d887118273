// pass::realFileSystem() on POSIX: readdir + fstatat for the listing, pread for reading.

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <fmt/format.h>

#include "pass/collector.hpp"
#include "platform/fs.hpp"

namespace pass {
namespace {

std::unexpected<Error> ioError(int err, std::string_view what, const std::filesystem::path& p) {
  return fail(err == ENOENT || err == ENOTDIR ? "not_found" : "io_error",
              fmt::format("{} {}: {}", what, platform::displayPath(p),
                          std::generic_category().message(err)));
}

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

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
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
    int fd;
    do {
      fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return ioError(errno, "cannot open", file);
    Fd f(fd);
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

FileSystem& realFileSystem() {
  static PosixFileSystem fs;
  return fs;
}

}  // namespace pass
