//! The one shell script kinit runs on each host to learn its facts, and the pure parser of its
//! output. One SSH round trip per host: every reading is a section of the same output.
//!
//! The script only reads (it changes nothing), uses POSIX sh plus tools present on any systemd
//! distribution, and never fails as a whole: a missing tool leaves its section empty. Files are
//! read with the shell's own `read` where that saves a fork per host (50 hosts probed at once
//! share the operator's and the hosts' CPUs), except /proc/sys files: they answer only a read
//! at offset 0, and `read` takes a byte at a time. The container a host runs in is what systemd
//! (PID 1) detected at boot and wrote to /run/systemd/container (no file: none, or no systemd,
//! which fails its own check): `systemd-detect-virt` costs ~18 ms of CPU per host.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::ssh::SshError;
use crate::ssh::quote::quote as q;

/// What the probe needs to know beyond the host itself.
#[derive(Debug, Clone, Default)]
pub struct ProbeRequest {
    /// etcd's data directory: its free space and contents are checked.
    pub etcd_data_dir: String,
    /// Ports of other hosts this host will connect to once the cluster runs: the probe tells
    /// how a connect to each ends.
    pub connects: Vec<SocketAddr>,
    /// Ports the host's components will listen on: only their holders are looked up (pid, exe,
    /// unit). `ss -p` walks every process's file descriptors, so it runs only when one of them
    /// is taken.
    pub ports: Vec<u16>,
}

const MARK: &str = "==kinit:";
/// How long a host waits for a connect to another host to end. On a working network a refusal
/// comes back within milliseconds; a connect still pending then is being dropped.
pub const CONNECT_TIMEOUT_SECS: u32 = 2;

/// The script for one host. Values interpolated into it are shell-quoted (a value no shell word
/// can carry, such as one with a NUL byte, is an error).
pub fn script(req: &ProbeRequest) -> Result<String, SshError> {
    // The wanted ports as a local-address pattern for `ss -Hltn` lines (`ADDR:PORT` then blanks;
    // the peer column is `*`). Numbers only: nothing from the config reaches the script here.
    let wanted = req
        .ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join("|");
    let mut s = if wanted.is_empty() {
        String::from("w=\n")
    } else {
        format!("w=':({wanted})[[:space:]]'\n")
    };
    s.push_str(
        r#"export LC_ALL=C
sec() { echo "==kinit:$1=="; }
sec clock-start; date +%s.%N
sec uid; u=$(id -u); echo "$u"
sec hostname; cat /proc/sys/kernel/hostname
sec machine-id; [ -r /etc/machine-id ] && read -r x < /etc/machine-id && echo "$x"
sec product-uuid; [ -r /sys/class/dmi/id/product_uuid ] && read -r x < /sys/class/dmi/id/product_uuid && echo "$x"
sec macs; for d in /sys/class/net/*; do n=${d##*/}; [ "$n" = lo ] && continue; [ -e "$d/device" ] || [ -e "$d/address" ] || continue; a=; [ -r "$d/address" ] && read -r a < "$d/address"; echo "$n $a"; done
sec nproc; nproc 2>/dev/null || getconf _NPROCESSORS_ONLN
sec meminfo; while read -r x || [ -n "$x" ]; do case $x in MemTotal:*|SwapTotal:*) echo "$x";; esac; done < /proc/meminfo
sec swaps; while read -r x || [ -n "$x" ]; do echo "$x"; done < /proc/swaps
sec kernel; uname -r
sec os-release; [ -r /etc/os-release ] && while read -r x || [ -n "$x" ]; do echo "$x"; done < /etc/os-release
sec ip-forward; cat /proc/sys/net/ipv4/ip_forward 2>/dev/null
sec modules; cut -d' ' -f1 /proc/modules 2>/dev/null; for m in br_netfilter overlay; do [ -d /sys/module/$m ] && echo $m; done
sec cgroup; stat -fc %T /sys/fs/cgroup 2>/dev/null
sec systemd; [ -d /run/systemd/system ] && echo yes || echo no
sec container; [ -r /run/systemd/container ] && read -r x < /run/systemd/container && echo "$x"
sec sudo; if [ "$u" = 0 ]; then echo root; elif sudo -n true 2>/dev/null; then echo nopasswd; else echo password; fi
sec listeners; l=$(ss -Hltn 2>/dev/null); [ -n "$w" ] && printf '%s\n' "$l" | grep -qE "$w" && l=$(ss -Hltnp 2>/dev/null); [ -n "$l" ] && printf '%s\n' "$l"
sec processes; [ -n "$w" ] && for p in $(printf '%s\n' "$l" | grep -E "$w" | grep -o 'pid=[0-9]*' | sort -u); do p=${p#pid=}; echo "pid $p"; echo "exe $(readlink /proc/$p/exe 2>/dev/null | tr '\n' ' ')"; c=$(grep -m1 -E '^0::|:name=systemd:' /proc/$p/cgroup 2>/dev/null | cut -d: -f3- | tr -d '\n'); echo "cgroup $c"; u=${c##*/}; case $u in *.service) m=$(systemctl show -p MainPID --value "$u" 2>/dev/null); echo "main-exe $(readlink /proc/${m:-0}/exe 2>/dev/null | tr '\n' ' ')";; esac; echo "cmd $(head -c 300 /proc/$p/cmdline 2>/dev/null | tr '\000\n' '  ')"; done
sec time-services; systemctl show -p Id -p LoadState -p ActiveState chrony chronyd systemd-timesyncd ntp ntpsec 2>/dev/null
sec ntp-synchronized; timedatectl show -p NTPSynchronized --value 2>/dev/null
sec addresses; ip -o addr show 2>/dev/null | awk '{print $2, $4}'
"#,
    );
    let dir = q(&req.etcd_data_dir)?;
    s.push_str(&format!(
        "sec etcd-dir; if [ -d {dir} ]; then echo exists; ls -A {dir} | head -n 20; else echo absent; fi\n"
    ));
    // Free space where the data directory is, or would be created.
    s.push_str(&format!(
        "sec etcd-df; p={dir}; while [ ! -e \"$p\" ]; do p=$(dirname \"$p\"); done; df -Pk \"$p\" | tail -n 1\n"
    ));
    // Every connect at once, from one bash (its /dev/tcp does the connect): a connect costs one
    // fork, not a shell, and all of them together take at most CONNECT_TIMEOUT_SECS. Each is
    // first written as a timeout; one that connects is written again as open, one that fails
    // makes bash say why (`bash: /dev/tcp/ADDR/PORT: Connection refused`, stderr joined to
    // stdout); the last word on an address and port wins. Without bash the section stays
    // empty: nothing is judged rather than everything timing out.
    s.push_str("sec reach\n");
    if !req.connects.is_empty() {
        let targets = req
            .connects
            .iter()
            .map(|a| q(&format!("{} {}", a.ip(), a.port())))
            .collect::<Result<Vec<_>, _>>()?
            .join(" ");
        let inner = format!(
            "set -f; exec 2>&1; for t in {targets}; do set -- $t; (exec 3<>\"/dev/tcp/$1/$2\" && echo \"$1 $2 open\") & done; wait"
        );
        s.push_str(&format!(
            "if command -v bash >/dev/null; then printf '%s timeout\\n' {targets}; timeout {CONNECT_TIMEOUT_SECS} bash -c {}; fi\n",
            q(&inner)?
        ));
    }
    // The clock last, closest to the moment the output returns (skew is measured around it).
    s.push_str("sec clock; date +%s.%N\nsec end\n");
    Ok(s)
}

/// The probe's output cut into its named sections.
pub fn sections(output: &str) -> HashMap<&str, Vec<&str>> {
    let mut map: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut current: Option<&str> = None;
    for line in output.lines() {
        if let Some(name) = line.strip_prefix(MARK).and_then(|r| r.strip_suffix("==")) {
            current = Some(name);
            map.entry(name).or_default();
        } else if let Some(name) = current {
            map.entry(name).or_default().push(line);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_quotes_the_data_dir_and_lists_connects() {
        let s = script(&ProbeRequest {
            etcd_data_dir: "/var/lib/my etcd".into(),
            connects: vec!["10.0.0.12:2380".parse().unwrap()],
            ports: vec![2379, 2380],
        })
        .unwrap();
        assert!(s.contains("if [ -d '/var/lib/my etcd' ]"), "{s}");
        assert!(
            s.contains("printf '%s timeout\\n' '10.0.0.12 2380';"),
            "{s}"
        );
        assert!(s.starts_with("w=':(2379|2380)[[:space:]]'\n"), "{s}");
        assert!(s.ends_with("sec end\n"));
    }

    #[test]
    fn sections_split_on_markers() {
        let out = "==kinit:a==\n1\n2\n==kinit:b==\n==kinit:c==\nx\n";
        let s = sections(out);
        assert_eq!(s["a"], ["1", "2"]);
        assert!(s["b"].is_empty());
        assert_eq!(s["c"], ["x"]);
    }
}
