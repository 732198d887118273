// The MSI's custom action (installer/windows/custom_action_steps.hpp): CustomActionData becomes
// one fixed argument vector per step, and a BUNDLE or EVERY property can never add, split or
// bend an argument of pass-svp.exe.

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../../installer/windows/custom_action_steps.hpp"

using pass::msi::parseStep;
using pass::msi::Step;

namespace {

const std::wstring kProgram = L"C:\\Program Files\\PASS\\pass-svp.exe";
const std::wstring kConfig = L"C:\\ProgramData\\PASS\\agent.xml";

/// The command line split as CommandLineToArgvW and the C runtime split it: 2n backslashes
/// before a quote are n and the quote toggles quoting, 2n+1 are n and a literal quote; other
/// backslashes are literal; blanks outside quotes separate arguments.
std::vector<std::wstring> argvOf(std::wstring_view line) {
  std::vector<std::wstring> argv;
  std::wstring current;
  bool inArgument = false;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const wchar_t c = line[i];
    if (c == L'\\') {
      std::size_t n = 0;
      while (i < line.size() && line[i] == L'\\') {
        ++n;
        ++i;
      }
      inArgument = true;
      if (i < line.size() && line[i] == L'"') {
        current.append(n / 2, L'\\');
        if (n % 2 == 1) {
          current.push_back(L'"');
          continue;
        }
        quoted = !quoted;
        continue;
      }
      current.append(n, L'\\');
      --i;
      continue;
    }
    if (c == L'"') {
      quoted = !quoted;
      inArgument = true;
      continue;
    }
    if ((c == L' ' || c == L'\t') && !quoted) {
      if (inArgument) argv.push_back(std::exchange(current, {}));
      inArgument = false;
      continue;
    }
    current.push_back(c);
    inArgument = true;
  }
  if (inArgument) argv.push_back(current);
  return argv;
}

std::string narrow(std::wstring_view text) {
  std::string out;
  for (wchar_t c : text) out.push_back(c < 0x80 ? static_cast<char>(c) : '?');
  return out;
}

std::vector<std::wstring> argvOfStep(const Step& step) {
  REQUIRE_MESSAGE(step.refusal.empty(), narrow(step.refusal));
  return argvOf(pass::msi::commandLine(step));
}

void checkRefused(const std::wstring& data, std::wstring_view expected) {
  const Step step = parseStep(data);
  CHECK_MESSAGE(step.refusal.find(expected) != std::wstring::npos, narrow(data), " -> ",
                narrow(step.refusal));
  CHECK(step.program.empty());
  CHECK(step.arguments.empty());
}

}  // namespace

TEST_CASE("each step's fields become exactly its arguments, quoted for CommandLineToArgvW") {
  // Spaces, a trailing backslash and non-ASCII letters stay one argument each.
  for (const std::wstring bundle :
       {L"C:\\PASS-install\\bundle", L"C:\\SVP Logs\\Donn\u00e9es\\bundle\\", L"D:\\a b\\\\",
        L"C:\\--config C:\\evil"}) {
    const Step step = parseStep(L"import-bundle|" + kProgram + L"|" + bundle + L"|" + kConfig);
    CHECK(argvOfStep(step) == std::vector<std::wstring>{kProgram, L"import-bundle", L"--from",
                                                        bundle, L"--config", kConfig});
    CHECK(step.ifExists.empty());
  }
  for (const std::wstring every : {L"1", L"5", L"1440", L"0010"}) {
    const Step step = parseStep(L"install-task|" + kProgram + L"|" + kConfig + L"|" + every);
    CHECK(argvOfStep(step) == std::vector<std::wstring>{kProgram, L"install-task", L"--config",
                                                        kConfig, L"--every", every});
    CHECK(step.ifExists == kConfig);  // skipped, with a line in the log, without agent.xml
  }
  const Step remove = parseStep(L"remove-task|" + kProgram);
  CHECK(argvOfStep(remove) == std::vector<std::wstring>{kProgram, L"remove-task"});
  // The log line the Windows stage (installer/windows/test.sh) looks for.
  CHECK(pass::msi::commandLine(parseStep(L"install-task|" + kProgram + L"|" + kConfig + L"|5")) ==
        L"\"C:\\Program Files\\PASS\\pass-svp.exe\" install-task --config "
        L"C:\\ProgramData\\PASS\\agent.xml --every 5");
}

TEST_CASE("BUNDLE or EVERY that would add or bend an argument is refused, nothing is run") {
  // '|' would have been a field separator: an extra --config, or an extra command.
  checkRefused(L"import-bundle|" + kProgram + L"|C:\\b|--config|C:\\evil\\agent.xml|" + kConfig,
               L"import-bundle: the installer gave 5 fields, not 3: a property (INSTALLDIR, "
               L"BUNDLE, CommonAppDataFolder) holds '|'");
  checkRefused(L"install-task|" + kProgram + L"|" + kConfig + L"|5|--config|C:\\evil.xml",
               L"holds '|'");
  // A quote would end the quoted argument; a line break or tab is no part of a path.
  checkRefused(L"import-bundle|" + kProgram + L"|C:\\b\" --config \"C:\\evil|" + kConfig,
               L"import-bundle: BUNDLE \"C:\\b\" --config \"C:\\evil\" holds a quote or a "
               L"control character");
  checkRefused(L"import-bundle|" + kProgram + L"|C:\\b\n--config|" + kConfig,
               L"BUNDLE \"C:\\b\n--config\" holds a quote or a control character");
  checkRefused(L"import-bundle|" + kProgram + L"|C:\\b\t|" + kConfig, L"holds a quote");
  checkRefused(L"import-bundle|" + kProgram + L"||" + kConfig, L"BUNDLE is empty");
  // EVERY is a whole number of minutes from 1 to 1440, nothing else.
  for (const std::wstring every :
       {L"0", L"1441", L"ten", L"5 --config C:\\evil.xml", L"-5", L"+5", L"01440", L"5.0"}) {
    checkRefused(
        L"install-task|" + kProgram + L"|" + kConfig + L"|" + every,
        L"install-task: EVERY \"" + every + L"\" is not a whole number of minutes from 1 to 1440");
  }
  checkRefused(L"install-task|" + kProgram + L"|" + kConfig + L"|", L"EVERY is empty");
  // Unknown steps and the old free-form layout ("PROGRAM|ARG|...") run nothing.
  checkRefused(L"", L"no known step");
  checkRefused(kProgram + L"|import-bundle|--from|C:\\b", L"no known step");
  checkRefused(L"remove-task|" + kProgram + L"|--all", L"gave 2 fields, not 1");
}
