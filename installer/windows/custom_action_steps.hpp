#pragma once
// What RunPassSvp (custom_action.cpp) runs, read from its CustomActionData. Pure and portable
// (no windows.h, C++20 like the DLL), so that tests/unit/test_msi_custom_action.cpp checks it
// on Linux; the DLL only executes the result.
//
// CustomActionData is "STEP|FIELD|FIELD...", each step with its fixed fields, and the argument
// vector is built here, not in the MSI: a property's value is always exactly one argument.
//
//   import-bundle|PROGRAM|BUNDLE|CONFIG  ->  PROGRAM import-bundle --from BUNDLE --config CONFIG
//   install-task|PROGRAM|CONFIG|EVERY    ->  PROGRAM install-task --config CONFIG --every EVERY
//                                            (skipped when CONFIG does not exist)
//   remove-task|PROGRAM                  ->  PROGRAM remove-task
//
// Refused: a field count other than the step's (a property holding '|', which no Windows path
// may contain, would add fields), a field holding a quote or a control character (no Windows
// path holds one either), an empty field, and an EVERY that is not a whole number from 1 to
// 1440.

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace pass::msi {

/// One program run, or why the data was refused.
struct Step {
  std::wstring program;
  std::vector<std::wstring> arguments;  // after the program's name
  std::wstring ifExists;                // run only when this file exists; empty: always
  std::wstring refusal;                 // not empty: nothing is run, and this says why
};

inline std::vector<std::wstring> splitFields(std::wstring_view text, wchar_t separator) {
  std::vector<std::wstring> fields;
  for (;;) {
    const auto at = text.find(separator);
    fields.emplace_back(text.substr(0, at));
    if (at == std::wstring_view::npos) return fields;
    text.remove_prefix(at + 1);
  }
}

/// The interval of install-task, in minutes.
inline bool everyMinutes(std::wstring_view text) {
  if (text.empty() || text.size() > 4) return false;
  unsigned minutes = 0;
  for (wchar_t c : text) {
    if (c < L'0' || c > L'9') return false;
    minutes = minutes * 10 + static_cast<unsigned>(c - L'0');
  }
  return minutes >= 1 && minutes <= 1440;
}

inline Step parseStep(std::wstring_view data) {
  struct Layout {
    std::wstring_view step;
    std::size_t count;                         // fields after the step's name
    std::array<std::wstring_view, 3> sources;  // the MSI property each field comes from
  };
  constexpr std::array kLayouts{
      Layout{L"import-bundle", 3, {L"INSTALLDIR", L"BUNDLE", L"CommonAppDataFolder"}},
      Layout{L"install-task", 3, {L"INSTALLDIR", L"CommonAppDataFolder", L"EVERY"}},
      Layout{L"remove-task", 1, {L"INSTALLDIR", {}, {}}},
  };
  Step step;
  const std::vector<std::wstring> fields = splitFields(data, L'|');
  const Layout* layout = nullptr;
  for (const Layout& l : kLayouts) {
    if (fields.front() == l.step) layout = &l;
  }
  if (layout == nullptr) {
    step.refusal = L"the installer gave no known step (\"" + fields.front() +
                   L"\" is not import-bundle, install-task or remove-task); the MSI is broken";
    return step;
  }
  const std::wstring name(layout->step);
  if (fields.size() != layout->count + 1) {
    std::wstring properties;
    for (std::wstring_view source : layout->sources) {
      if (source.empty()) continue;
      properties += (properties.empty() ? L"" : L", ") + std::wstring(source);
    }
    step.refusal = name + L": the installer gave " + std::to_wstring(fields.size() - 1) +
                   L" fields, not " + std::to_wstring(layout->count) + L": a property (" +
                   properties + L") holds '|', which no path may contain; nothing was run";
    return step;
  }
  for (std::size_t i = 1; i < fields.size(); ++i) {
    const std::wstring source(layout->sources[i - 1]);
    const std::wstring& field = fields[i];
    if (field.empty()) {
      step.refusal = name + L": " + source + L" is empty; nothing was run";
      return step;
    }
    for (wchar_t c : field) {
      if (c == L'"' || c < L' ' || c == 0x7f) {
        step.refusal = name + L": " + source + L" \"" + field +
                       L"\" holds a quote or a control character (a line break, a tab), "
                       L"which no path may contain; nothing was run";
        return step;
      }
    }
  }
  if (layout->step == L"install-task" && !everyMinutes(fields[3])) {
    step.refusal = name + L": EVERY \"" + fields[3] +
                   L"\" is not a whole number of minutes from 1 to 1440; nothing was run";
    return step;
  }
  step.program = fields[1];
  if (layout->step == L"import-bundle") {
    step.arguments = {name, L"--from", fields[2], L"--config", fields[3]};
  } else if (layout->step == L"install-task") {
    step.arguments = {name, L"--config", fields[2], L"--every", fields[3]};
    step.ifExists = fields[2];
  } else {
    step.arguments = {name};
  }
  return step;
}

/// The rules of CommandLineToArgvW and the C runtime, as pass::task::quoteArgument has them:
/// backslashes are literal except before a quote, where a run of them is doubled.
inline std::wstring quoteArgument(std::wstring_view argument) {
  if (!argument.empty() && argument.find_first_of(L" \t\n\v\"") == std::wstring_view::npos) {
    return std::wstring(argument);
  }
  std::wstring out = L"\"";
  std::size_t backslashes = 0;
  for (wchar_t c : argument) {
    if (c == L'\\') {
      ++backslashes;
      continue;
    }
    out.append(c == L'"' ? backslashes * 2 + 1 : backslashes, L'\\');
    backslashes = 0;
    out.push_back(c);
  }
  out.append(backslashes * 2, L'\\');
  out.push_back(L'"');
  return out;
}

/// The command line of a step that was not refused: the program, then each argument, quoted.
inline std::wstring commandLine(const Step& step) {
  std::wstring line = quoteArgument(step.program);
  for (const auto& argument : step.arguments) {
    line += L' ';
    line += quoteArgument(argument);
  }
  return line;
}

}  // namespace pass::msi
