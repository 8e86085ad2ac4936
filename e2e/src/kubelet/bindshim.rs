//! An `LD_PRELOAD` shim (compiled once with the system C compiler) for pod processes:
//! - their own address without a network namespace: `bind` to the wildcard address binds
//!   the pod IP instead, and unbound TCP sockets get the pod IP as source before `connect`
//!   (the pod IP comes from `KUDU_E2E_POD_IP`);
//! - name resolution serialised behind one lock, because nss_wrapper (1.1.12) is not safe
//!   for concurrent `getaddrinfo` calls (multi-threaded clients crashed with heap
//!   corruption). The shim must come before nss_wrapper in `LD_PRELOAD`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Environment variable the shim reads.
pub const POD_IP_ENV: &str = "KUDU_E2E_POD_IP";

const SOURCE: &str = r#"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static pthread_mutex_t resolver_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
#define LOCKED(type, name, params, args)                          \
    type name params {                                            \
        static type (*real) params = 0;                           \
        if (!real) real = (type (*) params)dlsym(RTLD_NEXT, #name); \
        pthread_mutex_lock(&resolver_lock);                        \
        type rc = real args;                                       \
        pthread_mutex_unlock(&resolver_lock);                      \
        return rc;                                                 \
    }

LOCKED(int, getaddrinfo, (const char *n, const char *s, const struct addrinfo *h, struct addrinfo **r), (n, s, h, r))
LOCKED(int, getnameinfo, (const struct sockaddr *a, socklen_t l, char *h, socklen_t hl, char *s, socklen_t sl, int f), (a, l, h, hl, s, sl, f))
LOCKED(struct hostent *, gethostbyname, (const char *n), (n))
LOCKED(struct hostent *, gethostbyname2, (const char *n, int af), (n, af))
LOCKED(struct hostent *, gethostbyaddr, (const void *a, socklen_t l, int t), (a, l, t))
LOCKED(int, gethostbyname_r, (const char *n, struct hostent *h, char *b, size_t bl, struct hostent **r, int *e), (n, h, b, bl, r, e))
LOCKED(int, gethostbyname2_r, (const char *n, int af, struct hostent *h, char *b, size_t bl, struct hostent **r, int *e), (n, af, h, b, bl, r, e))
LOCKED(int, gethostbyaddr_r, (const void *a, socklen_t l, int t, struct hostent *h, char *b, size_t bl, struct hostent **r, int *e), (a, l, t, h, b, bl, r, e))

void freeaddrinfo(struct addrinfo *ai) {
    static void (*real)(struct addrinfo *) = 0;
    if (!real) real = (void (*)(struct addrinfo *))dlsym(RTLD_NEXT, "freeaddrinfo");
    pthread_mutex_lock(&resolver_lock);
    real(ai);
    pthread_mutex_unlock(&resolver_lock);
}

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

static int pod_addr4(struct in_addr *out) {
    const char *ip = getenv("KUDU_E2E_POD_IP");
    return ip && inet_pton(AF_INET, ip, out) == 1;
}

static int pod_addr6(struct in6_addr *out) {
    const char *ip = getenv("KUDU_E2E_POD_IP");
    char mapped[64];
    if (!ip) return 0;
    snprintf(mapped, sizeof mapped, "::ffff:%s", ip);
    return inet_pton(AF_INET6, mapped, out) == 1;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real = 0;
    if (!real) real = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in copy = *(const struct sockaddr_in *)addr;
        if (copy.sin_addr.s_addr == htonl(INADDR_ANY) && pod_addr4(&copy.sin_addr))
            return real(fd, (const struct sockaddr *)&copy, sizeof copy);
    } else if (addr && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 copy = *(const struct sockaddr_in6 *)addr;
        if (memcmp(&copy.sin6_addr, &in6addr_any, sizeof in6addr_any) == 0 && pod_addr6(&copy.sin6_addr))
            return real(fd, (const struct sockaddr *)&copy, sizeof copy);
    }
    return real(fd, addr, len);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static connect_fn real = 0;
    static bind_fn real_bind = 0;
    if (!real) real = (connect_fn)dlsym(RTLD_NEXT, "connect");
    if (!real_bind) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    int type = 0;
    socklen_t tlen = sizeof type;
    if (addr && addr->sa_family == AF_INET && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type == SOCK_STREAM) {
        struct sockaddr_in local;
        socklen_t llen = sizeof local;
        const struct sockaddr_in *dst = (const struct sockaddr_in *)addr;
        int loopback_dst = (ntohl(dst->sin_addr.s_addr) >> 24) == 127;
        if (loopback_dst && getsockname(fd, (struct sockaddr *)&local, &llen) == 0 && local.sin_port == 0 && local.sin_addr.s_addr == htonl(INADDR_ANY)) {
            struct sockaddr_in src;
            memset(&src, 0, sizeof src);
            src.sin_family = AF_INET;
            if (pod_addr4(&src.sin_addr)) real_bind(fd, (const struct sockaddr *)&src, sizeof src);
        }
    }
    return real(fd, addr, len);
}
"#;

fn compile(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let lib = dir.join("libkudu_e2e_bindshim.so");
    if lib.is_file() {
        return Ok(lib);
    }
    let src = dir.join(format!("bindshim-{}.c", std::process::id()));
    std::fs::write(&src, SOURCE).map_err(|e| format!("writing {}: {e}", src.display()))?;
    let tmp = dir.join(format!("libkudu_e2e_bindshim-{}.so", std::process::id()));
    let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-shared", "-fPIC", "-O2", "-pthread", "-o"])
        .arg(&tmp)
        .arg(&src)
        .arg("-ldl")
        .output()
        .map_err(|e| format!("running the C compiler: {e}"))?;
    let _ = std::fs::remove_file(&src);
    if !out.status.success() {
        return Err(format!("compiling the bind shim failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    std::fs::rename(&tmp, &lib).map_err(|e| format!("installing {}: {e}", lib.display()))?;
    Ok(lib)
}

/// The shim library, compiled on first use into a per-source-version temp directory;
/// `None` (with a warning) when no C compiler is available.
pub fn library() -> Option<&'static Path> {
    static LIB: OnceLock<Option<PathBuf>> = OnceLock::new();
    LIB.get_or_init(|| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in SOURCE.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let dir = std::env::temp_dir().join(format!("kudu-e2e-bindshim-{h:016x}"));
        match compile(&dir) {
            Ok(lib) => Some(lib),
            Err(e) => {
                tracing::warn!(error = %e, "no bind shim: pod processes must bind their pod IP themselves");
                None
            }
        }
    })
    .as_deref()
}
