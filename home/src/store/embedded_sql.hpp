#pragma once
// SQL files compiled into pass-home (cmake/embed_sql.cmake, pass_embed_sql): the schema
// migrations of each store backend.

#include <span>
#include <string_view>

namespace pass::home {

/// One file NNNN_<name>.sql of an embedded folder.
struct EmbeddedSql {
  int number;             // NNNN: the files of a folder are numbered 1, 2, … in order
  std::string_view file;  // the file's name, e.g. "0003_tickets.sql"
  std::string_view sql;   // its text, as is
};

}  // namespace pass::home
