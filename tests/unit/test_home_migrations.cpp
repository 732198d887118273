// The schema migrations embedded in pass-home (home/src/store/sqlite/migrations/*.sql,
// cmake/embed_sql.cmake): numbered without gaps up to kSchemaVersion, and the files as they are.

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "pass/home/store.hpp"
#include "store/sqlite/migrations.hpp"

using namespace pass::home;

TEST_CASE("the embedded migrations are numbered 1..N without gaps and N is kSchemaVersion") {
  REQUIRE(std::ssize(kSqliteMigrations) == kSchemaVersion);
  for (std::size_t i = 0; i < kSqliteMigrations.size(); ++i) {
    const EmbeddedSql& m = kSqliteMigrations[i];
    CAPTURE(m.file);
    CHECK(m.number == static_cast<int>(i + 1));
    CHECK(m.file.starts_with(fmt::format("{:04}_", i + 1)));
    CHECK(m.file.ends_with(".sql"));
    CHECK_FALSE(m.sql.empty());
  }
}

TEST_CASE("each embedded migration is its file in home/src/store/sqlite/migrations, unchanged") {
  const std::filesystem::path dir =
      std::filesystem::path(PASS_SOURCE_DIR) / "home/src/store/sqlite/migrations";
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".sql") ++files;
  }
  CHECK(files == kSqliteMigrations.size());
  for (const EmbeddedSql& m : kSqliteMigrations) {
    CAPTURE(m.file);
    std::ifstream in(dir / m.file, std::ios::binary);
    REQUIRE(in);
    std::ostringstream text;
    text << in.rdbuf();
    CHECK(text.str() == m.sql);
  }
}
