#pragma once
/// Text from agents and arrays as a terminal may show it.

#include <string>
#include <string_view>

namespace pass {

/// `text` with every control character escaped, so that nothing an agent or an array sent can
/// move the cursor, retitle a terminal, ring its bell or forge a line of a table: C0 controls
/// and DEL as \n, \r, \t or \xNN, C1 controls (U+0080..U+009F) as \u0080..\u009F, and a byte
/// that is not part of valid UTF-8 as \xNN. Everything else, backslashes included, stays as
/// it is: this is for reading, and `--json` gives the exact text.
std::string printable(std::string_view text);

}  // namespace pass
