// The schema migrations embedded in pass-home (home/src/store/sqlite/migrations/*.sql,
// cmake/embed_sql.cmake): numbered without gaps up to kSchemaVersion, the files as they are, and
// the shipped ones never edited.

#include <doctest/doctest.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "pass/bytes.hpp"
#include "pass/crypto.hpp"
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

TEST_CASE("a shipped migration is never edited: each keeps the SHA-256 it shipped with") {
  // Databases out there ran each of these as it is: an edit would give two homes of one schema
  // version two schemas. A new migration goes in a new file; add its hash here when it ships.
  constexpr std::array<std::string_view, 6> kShipped = {
      "678bd070f3ed9f62a6385d1c153b72b2eaf0e0cf07d59092d34e08ac58654d91",  // 0001_initial
      "394afbe4fe6ca7190f971deb09d1abfbf7a89d33999b648a1d8ba2bbc004ecab",  // 0002_event_ids
      "74f8d880ec7c9f86199ae84df52c52c2698cfc5b020090c5fb1edd7f5ab04451",  // 0003_tickets
      "01cc3f264e8917e853dc28bef3b46e87c907294fe6661ec0caa3e16ba8e5ec7a",  // 0004_expected_arrays
      "ee4c4743ee597b95230abd6ab79b2dbc930efc964965a82395d099cce3a9bcbc",  // 0005_envelope_keys
      "9a257fb21411b112eff078bcc5d4da4ae9fe53477d893662572309edb70c5f27",  // 0006_certificate_renewal
  };
  REQUIRE(kSqliteMigrations.size() >= kShipped.size());
  for (std::size_t i = 0; i < kShipped.size(); ++i) {
    CAPTURE(kSqliteMigrations[i].file);
    CHECK(pass::toHex(pass::sha256(pass::asBytes(kSqliteMigrations[i].sql))) == kShipped[i]);
  }
}
