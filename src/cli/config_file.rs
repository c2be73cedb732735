//! The CLI's own config files: `$XDG_CONFIG_HOME/owp/<name>.toml` (else `~/.config/owp`),
//! written owner-only (0600), since they hold tokens.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// `$XDG_CONFIG_HOME/owp/<file>`, or `$HOME/.config/owp/<file>`.
pub fn default_path(file: &str) -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .context("neither XDG_CONFIG_HOME nor HOME is set: pass --config")?;
            PathBuf::from(home).join(".config")
        }
    };
    Ok(base.join("owp").join(file))
}

/// Reads a TOML file; a missing one says which command makes it.
pub fn read<T: DeserializeOwned>(path: &Path, made_by: &str) -> anyhow::Result<T> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!("{} does not exist: run `{made_by}` first", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    toml::from_str(&text).with_context(|| format!("{} is not a valid config file", path.display()))
}

/// Reads a TOML file when it exists.
pub fn read_optional<T: DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(toml::from_str(&text).with_context(|| {
            format!("{} is not a valid config file", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `value` as TOML, readable by the owner only, replacing the file atomically.
pub fn write_private(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let text = toml::to_string(value)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("toml.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_are_owner_only_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("owp-cfg-{}", uuid::Uuid::now_v7().simple()));
        let path = dir.join("nested").join("w.toml");
        let mut v = std::collections::BTreeMap::new();
        v.insert("token".to_string(), "secret".to_string());
        write_private(&path, &v).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back: std::collections::BTreeMap<String, String> = read(&path, "x").unwrap();
        assert_eq!(back, v);
        let missing = read::<toml::Table>(&dir.join("none.toml"), "owp worker register");
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("owp worker register"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
