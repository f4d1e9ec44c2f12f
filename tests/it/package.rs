//! The Debian package: it builds, holds exactly the expected files, installs
//! with `dpkg -i` into a throwaway root (creating the drsn user there), puts
//! every file where the unit expects it, the unit verifies against that root
//! and scores as hardened, and `drsnd check` passes with the installed
//! config and model. `Depends` names the oldest glibc the binary runs on.
//!
//! By default the package is this machine's; `scripts/test-arm64.sh` runs
//! the same test on the arm64 package (`DRSN_DEB_ARCH=arm64`,
//! `DRSN_DEB_BIN=` the cross-built binary), whose installed binary runs
//! under QEMU through binfmt.

use crate::common;

use common::{root, BIN};
use std::path::Path;
use std::process::Command;

const FILES: [&str; 16] = [
    "./etc/drsn/drsnd.toml",
    "./usr/bin/drsnd",
    "./usr/lib/systemd/system/drsnd.service",
    "./usr/lib/sysusers.d/drsnd.conf",
    "./usr/lib/tmpfiles.d/drsnd.conf",
    "./usr/share/doc/drsnd/README.md",
    "./usr/share/doc/drsnd/models_README.md",
    "./usr/share/doc/drsnd/protocol.md",
    "./usr/share/doc/drsnd/service.md",
    "./usr/share/drsn/models/drsn-cw-cwru10.json",
    "./usr/share/drsn/models/drsn-cw-cwru10.onnx",
    "./usr/share/drsn/models/drsn-cw-cwru10.parity.json",
    "./usr/share/drsn/models/drsn-denoise.json",
    "./usr/share/drsn/models/drsn-denoise.onnx",
    "./usr/share/drsn/models/drsn-denoise.parity.json",
    "./usr/share/drsn/models/",
];

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

/// The package's architecture and binary: this machine's by default.
fn target() -> (Option<String>, String) {
    let arch = std::env::var("DRSN_DEB_ARCH").ok();
    let bin = std::env::var("DRSN_DEB_BIN").unwrap_or_else(|_| BIN.to_string());
    (arch, bin)
}

/// The newest `GLIBC_x.y` symbol version `bin` asks for, as (x, y).
fn newest_glibc(bin: &str) -> (u32, u32) {
    let text = run(Command::new("readelf").args(["--version-info", "--wide", bin]));
    text.split("GLIBC_")
        .skip(1)
        .filter_map(|t| {
            let v: String = t
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .max()
        .expect("the binary names a glibc version")
}

fn value_of<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("unit has no {key}"))
}

#[test]
fn package_installs_into_a_throwaway_root_and_checks_out() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (arch, bin) = target();
    let mut build = Command::new("bash");
    build.arg(root().join("scripts/build-deb.sh"));
    if let Some(a) = &arch {
        build.args(["--arch", a]);
    }
    let out = run(build.arg(&bin).arg(tmp.path()));
    let deb = out.trim().lines().last().expect("deb path").to_string();
    if let Some(a) = &arch {
        assert!(deb.ends_with(&format!("_{a}.deb")), "{deb} is not {a}");
    }

    // Depends: the glibc floor read from the binary itself.
    let depends = run(Command::new("dpkg-deb").args(["-f", &deb, "Depends"]));
    let (major, minor) = newest_glibc(&bin);
    assert!(
        depends.contains(&format!("libc6 (>= {major}.{minor})")),
        "Depends does not name glibc {major}.{minor}: {depends}"
    );

    // The file list.
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let files: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|p| !p.ends_with('/') || *p == "./usr/share/drsn/models/")
        .collect();
    for want in FILES {
        assert!(
            files.contains(&want),
            "{want} missing from the package: {files:?}"
        );
    }
    assert_eq!(
        files.len(),
        FILES.len(),
        "unexpected files in the package: {files:?}"
    );
    let conffiles = run(Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .arg("conffiles"));
    assert_eq!(conffiles.trim(), "/etc/drsn/drsnd.toml");

    // dpkg -i into a throwaway root; the maintainer scripts honour DPKG_ROOT.
    let r = tmp.path().join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(r.join(d)).expect("mkdir");
    }
    std::fs::write(r.join("var/lib/dpkg/status"), "").expect("status");
    if let Some(a) = &arch {
        run(Command::new("dpkg")
            .arg(format!("--root={}", r.display()))
            .args(["--add-architecture", a]));
    }
    run(Command::new("dpkg")
        .arg(format!("--root={}", r.display()))
        .args(["--force-script-chrootless", "--force-depends", "-i"])
        .arg(&deb));
    let passwd = std::fs::read_to_string(r.join("etc/passwd")).expect("passwd created");
    assert!(passwd.lines().any(|l| l.starts_with("drsn:")), "{passwd}");
    let group = std::fs::read_to_string(r.join("etc/group")).expect("group");
    assert!(
        group
            .lines()
            .any(|l| l.starts_with("audio:") && l.contains("drsn")),
        "drsn not in audio: {group}"
    );

    // Everything the unit and the config point at is there.
    let unit =
        std::fs::read_to_string(r.join("usr/lib/systemd/system/drsnd.service")).expect("unit");
    let exec: Vec<&str> = value_of(&unit, "ExecStart=").split_whitespace().collect();
    assert!(
        r.join(exec[0].trim_start_matches('/')).is_file(),
        "{} missing",
        exec[0]
    );
    let config_path = exec[exec
        .iter()
        .position(|a| *a == "--config")
        .expect("--config")
        + 1];
    let config = std::fs::read_to_string(r.join(config_path.trim_start_matches('/')))
        .expect("config installed");
    // The classifier's `model` and the denoiser's.
    let models: Vec<&str> = config
        .lines()
        .filter_map(|l| l.strip_prefix("model = "))
        .map(|m| m.trim_matches('"'))
        .collect();
    assert_eq!(models.len(), 2, "{models:?}");
    let (model, denoiser) = (models[0], models[1]);
    for model in models {
        assert!(
            r.join(model.trim_start_matches('/')).is_file(),
            "{model} missing"
        );
    }
    assert!(
        Path::new(&r.join("var/lib/drsn")).is_dir(),
        "StateDirectory base not created"
    );

    // systemd-analyze verify against that root (with the host's own units
    // and kill for what the unit depends on), and the security score.
    let units = r.join("usr/lib/systemd/system");
    for e in std::fs::read_dir("/usr/lib/systemd/system")
        .expect("host units")
        .flatten()
    {
        let dst = units.join(e.file_name());
        if !dst.exists() && e.path().is_file() {
            let _ = std::fs::copy(e.path(), dst);
        }
    }
    std::fs::create_dir_all(r.join("bin")).expect("bin");
    std::fs::copy("/bin/kill", r.join("bin/kill")).expect("kill");
    run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", r.display()))
        .arg("drsnd.service"));
    let sec = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(root().join("systemd/drsnd.service")));
    let score: f64 = sec
        .lines()
        .find_map(|l| l.split("drsnd.service: ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in {sec}"));
    assert!(score <= 2.5, "exposure {score} > 2.5");

    // `drsnd check` with the installed binary, config and model. No sound
    // card here, so ALSA's default device is a file-backed capture device.
    let raw = tmp.path().join("capture.raw");
    std::fs::write(&raw, vec![0u8; 96_000]).expect("raw");
    let asound = tmp.path().join("asound.conf");
    std::fs::write(
        &asound,
        format!(
            "pcm.drsnraw {{ type file; slave.pcm \"null\"; file \"/dev/null\"; infile \"{}\"; format \"raw\" }}\n\
             pcm.!default {{ type plug; slave {{ pcm \"drsnraw\"; format S16_LE; rate 48000; channels 1 }} }}\n",
            raw.display()
        ),
    )
    .expect("asound");
    let check = run(Command::new(r.join("usr/bin/drsnd"))
        .args(["check", "--config"])
        .arg(r.join(config_path.trim_start_matches('/')))
        // Not chrooted: the config's absolute model path, inside the root.
        .arg("--model")
        .arg(r.join(model.trim_start_matches('/')))
        .arg("--denoise-model")
        .arg(r.join(denoiser.trim_start_matches('/')))
        .env(
            "ALSA_CONFIG_PATH",
            format!("/usr/share/alsa/alsa.conf:{}", asound.display()),
        ));
    // stdout ends with "ok"; under emulation tract warns on stderr too.
    assert!(check.lines().any(|l| l == "ok"), "{check}");
    assert!(check.contains("denoiser  drsn-denoise"), "{check}");
    assert!(
        check.contains("sha256") && check.contains("(matches)"),
        "{check}"
    );
}
