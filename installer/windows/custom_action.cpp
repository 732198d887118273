// pass-msi-ca.dll: the MSI's one custom action, RunPassSvp, which runs pass-svp.exe and copies
// everything the program prints into the MSI log. Windows Installer's own exe custom actions
// (type 18) throw a program's output away, so a refused bundle would leave nothing in the log
// but "returned actual error code 2"; the field engineer needs the sentence that says why.
//
// Deferred actions see only CustomActionData: "STEP|FIELD|...", one fixed layout per step,
// which custom_action_steps.hpp turns into the program's argument vector (and refuses when a
// property would add or bend an argument). Built by installer/windows/build.sh with mingw-w64;
// Windows only, like win-svp/.

#include <windows.h>
// windows.h first: msi.h and msiquery.h rely on its types.
#include <msi.h>
#include <msiquery.h>

#include <string>
#include <string_view>

#include "custom_action_steps.hpp"

namespace pass::msi {
namespace {

// import-bundle and install-task take seconds; a program that hangs must not hang the install.
constexpr DWORD kTimeoutMs = 5 * 60 * 1000;
constexpr DWORD kPollMs = 50;

/// A kernel handle that is closed once.
class Handle {
 public:
  Handle() = default;
  explicit Handle(HANDLE handle) : handle_(handle) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  void reset() {
    if (handle_ != nullptr && handle_ != INVALID_HANDLE_VALUE) CloseHandle(handle_);
    handle_ = nullptr;
  }
  HANDLE get() const { return handle_; }
  HANDLE* out() {
    reset();
    return &handle_;
  }
  bool valid() const { return handle_ != nullptr && handle_ != INVALID_HANDLE_VALUE; }

 private:
  HANDLE handle_ = nullptr;
};

/// The installer session: properties in, messages out (to the log, and to the UI when it has
/// one).
class Session {
 public:
  explicit Session(MSIHANDLE install) : install_(install) {}

  std::wstring property(const wchar_t* name) const {
    wchar_t empty[1] = L"";
    DWORD size = 0;
    if (MsiGetPropertyW(install_, name, empty, &size) != ERROR_MORE_DATA) return {};
    std::wstring value(size + 1, L'\0');
    size = static_cast<DWORD>(value.size());
    if (MsiGetPropertyW(install_, name, value.data(), &size) != ERROR_SUCCESS) return {};
    value.resize(size);
    return value;
  }

  void info(std::wstring_view text) const { message(INSTALLMESSAGE_INFO, text); }
  void error(std::wstring_view text) const {
    message(static_cast<INSTALLMESSAGE>(INSTALLMESSAGE_ERROR | MB_OK | MB_ICONERROR), text);
  }

 private:
  void message(INSTALLMESSAGE kind, std::wstring_view text) const {
    PMSIHANDLE record = MsiCreateRecord(0);
    MsiRecordSetStringW(record, 0, escape(text).c_str());
    MsiProcessMessage(install_, kind, record);
  }

  // The installer formats a message as a template ([Property], {…}): brackets and braces in a
  // program's output are escaped so that they arrive as written.
  static std::wstring escape(std::wstring_view text) {
    std::wstring out;
    out.reserve(text.size());
    for (wchar_t c : text) {
      if (c == L'[' || c == L']' || c == L'{' || c == L'}') {
        out += L"[\\";
        out += c;
        out += L']';
      } else {
        out += c;
      }
    }
    return out;
  }

  MSIHANDLE install_;
};

std::wstring systemMessage(DWORD code) {
  wchar_t* text = nullptr;
  const DWORD length = FormatMessageW(
      FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
      nullptr, code, 0, reinterpret_cast<wchar_t*>(&text), 0, nullptr);
  std::wstring message = length > 0 ? std::wstring(text, length) : L"Windows error";
  LocalFree(text);
  while (!message.empty() && (message.back() == L'\n' || message.back() == L'\r' ||
                              message.back() == L' ' || message.back() == L'.')) {
    message.pop_back();
  }
  return message + L" (" + std::to_wstring(code) + L")";
}

// pass-svp.exe writes UTF-8; anything that is not valid UTF-8 is read in the OEM code page,
// as a console would show it.
std::wstring decode(std::string_view bytes) {
  if (bytes.empty()) return {};
  for (UINT page : {static_cast<UINT>(CP_UTF8), static_cast<UINT>(CP_OEMCP)}) {
    const DWORD flags = page == CP_UTF8 ? MB_ERR_INVALID_CHARS : 0;
    const int length =
        MultiByteToWideChar(page, flags, bytes.data(), static_cast<int>(bytes.size()), nullptr, 0);
    if (length <= 0) continue;
    std::wstring text(static_cast<std::size_t>(length), L'\0');
    MultiByteToWideChar(page, flags, bytes.data(), static_cast<int>(bytes.size()), text.data(),
                        length);
    return text;
  }
  return L"(undecodable output)";
}

/// Passes complete lines of a program's output to the log as they arrive.
class LineLogger {
 public:
  LineLogger(const Session& session, std::wstring prefix)
      : session_(session), prefix_(std::move(prefix)) {}

  void add(std::string_view bytes) {
    pending_.append(bytes);
    for (auto at = pending_.find('\n'); at != std::string::npos; at = pending_.find('\n')) {
      emit(std::string_view(pending_).substr(0, at));
      pending_.erase(0, at + 1);
    }
  }
  void finish() {
    if (!pending_.empty()) emit(pending_);
    pending_.clear();
  }
  const std::wstring& lastLine() const { return last_; }

 private:
  void emit(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return;
    last_ = decode(line);
    session_.info(prefix_ + last_);
  }

  const Session& session_;
  std::wstring prefix_;
  std::string pending_;
  std::wstring last_;
};

bool drain(HANDLE pipe, LineLogger& logger) {
  for (;;) {
    DWORD available = 0;
    if (!PeekNamedPipe(pipe, nullptr, 0, nullptr, &available, nullptr)) return false;
    if (available == 0) return true;
    char buffer[4096];
    DWORD got = 0;
    if (!ReadFile(pipe, buffer, sizeof buffer, &got, nullptr) || got == 0) return false;
    logger.add(std::string_view(buffer, got));
  }
}

struct Outcome {
  bool started = false;
  DWORD exitCode = 0;
  std::wstring failure;  // why it could not be run or did not finish
};

Outcome run(const std::wstring& program, std::wstring commandLine, LineLogger& logger) {
  Outcome outcome;
  SECURITY_ATTRIBUTES inherit{sizeof(SECURITY_ATTRIBUTES), nullptr, TRUE};
  Handle readEnd;
  Handle writeEnd;
  if (!CreatePipe(readEnd.out(), writeEnd.out(), &inherit, 0) ||
      !SetHandleInformation(readEnd.get(), HANDLE_FLAG_INHERIT, 0)) {
    outcome.failure = L"cannot create a pipe: " + systemMessage(GetLastError());
    return outcome;
  }
  Handle input(CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit,
                           OPEN_EXISTING, 0, nullptr));
  STARTUPINFOW startup{};
  startup.cb = sizeof startup;
  startup.dwFlags = STARTF_USESTDHANDLES;
  startup.hStdInput = input.valid() ? input.get() : nullptr;
  startup.hStdOutput = writeEnd.get();
  startup.hStdError = writeEnd.get();
  PROCESS_INFORMATION info{};
  if (!CreateProcessW(program.c_str(), commandLine.data(), nullptr, nullptr, TRUE,
                      CREATE_NO_WINDOW | CREATE_UNICODE_ENVIRONMENT, nullptr, nullptr, &startup,
                      &info)) {
    outcome.failure = L"cannot start " + program + L": " + systemMessage(GetLastError());
    return outcome;
  }
  outcome.started = true;
  Handle process(info.hProcess);
  Handle thread(info.hThread);
  // Only the child may hold the write end now, so that the pipe ends with it.
  writeEnd.reset();
  input.reset();

  const ULONGLONG deadline = GetTickCount64() + kTimeoutMs;
  for (;;) {
    const DWORD wait = WaitForSingleObject(process.get(), kPollMs);
    drain(readEnd.get(), logger);
    if (wait == WAIT_OBJECT_0) break;
    if (GetTickCount64() >= deadline) {
      TerminateProcess(process.get(), ERROR_TIMEOUT);
      WaitForSingleObject(process.get(), kPollMs * 20);
      drain(readEnd.get(), logger);
      logger.finish();
      outcome.failure = L"did not finish within " + std::to_wstring(kTimeoutMs / 60000) +
                        L" minutes and was stopped";
      return outcome;
    }
  }
  logger.finish();
  GetExitCodeProcess(process.get(), &outcome.exitCode);
  return outcome;
}

std::wstring baseName(const std::wstring& path) {
  const auto at = path.find_last_of(L"\\/");
  return at == std::wstring::npos ? path : path.substr(at + 1);
}

bool fileExists(const std::wstring& path) {
  const DWORD attributes = GetFileAttributesW(path.c_str());
  return attributes != INVALID_FILE_ATTRIBUTES && !(attributes & FILE_ATTRIBUTE_DIRECTORY);
}

UINT runPassSvp(MSIHANDLE install) {
  const Session session(install);
  const Step step = parseStep(session.property(L"CustomActionData"));
  if (!step.refusal.empty()) {
    session.error(L"RunPassSvp: " + step.refusal);
    return ERROR_INSTALL_FAILURE;
  }
  const std::wstring what = baseName(step.program) + L" " + step.arguments.front();
  if (!step.ifExists.empty() && !fileExists(step.ifExists)) {
    session.info(L"RunPassSvp: " + step.ifExists + L" does not exist, so this step is skipped: " +
                 what);
    return ERROR_SUCCESS;
  }
  const std::wstring line = commandLine(step);
  session.info(L"RunPassSvp: running " + line);

  // One prefix on every line, so that one search of the log (find "RunPassSvp") shows it all.
  LineLogger logger(session, L"RunPassSvp: " + what + L": ");
  const Outcome outcome = run(step.program, line, logger);
  if (!outcome.failure.empty()) {
    session.error(L"RunPassSvp: " + what + L" " + outcome.failure);
    return ERROR_INSTALL_FAILURE;
  }
  if (outcome.exitCode != 0) {
    std::wstring text =
        L"RunPassSvp: " + what + L" failed with exit code " + std::to_wstring(outcome.exitCode);
    if (!logger.lastLine().empty()) text += L": " + logger.lastLine();
    session.error(text + L" (what to do: install-windows.md, Troubleshooting)");
    return ERROR_INSTALL_FAILURE;
  }
  session.info(L"RunPassSvp: " + what + L" finished (exit code 0)");
  return ERROR_SUCCESS;
}

}  // namespace
}  // namespace pass::msi

/// The custom action's entry (CustomAction DllEntry="RunPassSvp"): runs the program named in
/// CustomActionData and logs its output; ERROR_INSTALL_FAILURE when it could not be run or
/// exited non-zero.
extern "C" __declspec(dllexport) UINT __stdcall RunPassSvp(MSIHANDLE install) {
  try {
    return pass::msi::runPassSvp(install);
  } catch (...) {
    // Nothing may escape into msiexec; bad_alloc is the only thing that could be thrown.
    return ERROR_INSTALL_FAILURE;
  }
}
