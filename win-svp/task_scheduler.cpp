// The Task Scheduler 2.0 COM API, wrapped once (task_scheduler.hpp).

#include "task_scheduler.hpp"

#include <windows.h>

#include <oleauto.h>
#include <taskschd.h>

#include <functional>

#include <fmt/format.h>

#include "platform/windows/text.hpp"

namespace pass::win {
namespace {

using platform::errorText;
using platform::wide;

constexpr const char* kCode = "task";

/// Owns one COM interface pointer.
template <typename T>
class Com {
 public:
  Com() = default;
  Com(const Com&) = delete;
  Com& operator=(const Com&) = delete;
  ~Com() {
    if (p_ != nullptr) p_->Release();
  }
  T** out() { return &p_; }
  T* operator->() const { return p_; }

 private:
  T* p_ = nullptr;
};

/// Owns a BSTR.
class Bstr {
 public:
  explicit Bstr(const std::wstring& s)
      : b_(::SysAllocStringLen(s.data(), static_cast<UINT>(s.size()))) {}
  Bstr(const Bstr&) = delete;
  Bstr& operator=(const Bstr&) = delete;
  ~Bstr() { ::SysFreeString(b_); }
  BSTR get() const { return b_; }

 private:
  BSTR b_;
};

/// COM for this thread, for the duration of one call.
class ComScope {
 public:
  ComScope() : hr_(::CoInitializeEx(nullptr, COINIT_MULTITHREADED)) {
    if (SUCCEEDED(hr_)) {
      // RPC_E_TOO_LATE when the process set it already: harmless.
      ::CoInitializeSecurity(nullptr, -1, nullptr, nullptr, RPC_C_AUTHN_LEVEL_PKT_PRIVACY,
                             RPC_C_IMP_LEVEL_IMPERSONATE, nullptr, 0, nullptr);
    }
  }
  ComScope(const ComScope&) = delete;
  ComScope& operator=(const ComScope&) = delete;
  ~ComScope() {
    if (SUCCEEDED(hr_)) ::CoUninitialize();
  }
  HRESULT result() const { return hr_; }

 private:
  HRESULT hr_;
};

std::unexpected<Error> comError(std::string_view what, HRESULT hr) {
  std::string advice;
  if (hr == E_ACCESSDENIED) {
    advice = "; run it from an elevated (Run as administrator) command prompt";
  }
  return fail(kCode, fmt::format("{}: {} (0x{:08X}){}", what, errorText(static_cast<DWORD>(hr)),
                                 static_cast<unsigned long>(hr), advice));
}

Result<bool> withRootFolder(const std::function<Result<bool>(ITaskFolder&)>& body) {
  ComScope com;
  if (FAILED(com.result())) return comError("cannot start COM", com.result());
  Com<ITaskService> service;
  HRESULT hr = ::CoCreateInstance(CLSID_TaskScheduler, nullptr, CLSCTX_INPROC_SERVER,
                                  IID_ITaskService, reinterpret_cast<void**>(service.out()));
  if (FAILED(hr)) return comError("cannot reach the Task Scheduler", hr);
  VARIANT none;
  ::VariantInit(&none);
  hr = service->Connect(none, none, none, none);
  if (FAILED(hr)) return comError("cannot connect to the Task Scheduler service", hr);
  Com<ITaskFolder> root;
  Bstr rootPath(L"\\");
  hr = service->GetFolder(rootPath.get(), root.out());
  if (FAILED(hr)) return comError("cannot open the Task Scheduler's root folder", hr);
  return body(*root.operator->());
}

}  // namespace

Status registerTask(const std::string& name, const std::string& xml) {
  auto done = withRootFolder([&](ITaskFolder& root) -> Result<bool> {
    Bstr taskName(wide(name));
    Bstr definition(wide(xml));
    VARIANT user;
    ::VariantInit(&user);
    user.vt = VT_BSTR;
    Bstr system(L"S-1-5-18");
    user.bstrVal = system.get();
    VARIANT none;
    ::VariantInit(&none);
    Com<IRegisteredTask> task;
    HRESULT hr = root.RegisterTask(taskName.get(), definition.get(), TASK_CREATE_OR_UPDATE, user,
                                   none, TASK_LOGON_SERVICE_ACCOUNT, none, task.out());
    if (FAILED(hr)) return comError(fmt::format("cannot register the task \"{}\"", name), hr);
    return true;
  });
  if (!done) return std::unexpected(done.error());
  return {};
}

Result<bool> deleteTask(const std::string& name) {
  return withRootFolder([&](ITaskFolder& root) -> Result<bool> {
    Bstr taskName(wide(name));
    HRESULT hr = root.DeleteTask(taskName.get(), 0);
    if (hr == HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)) return false;
    if (FAILED(hr)) return comError(fmt::format("cannot delete the task \"{}\"", name), hr);
    return true;
  });
}

}  // namespace pass::win
