//! Engine parameters set on the command line: `--param NAME=VALUE`, for the
//! commands that start nodes themselves (`dwcpd demo`, `dwcpd bench`), so that any
//! field of an engine's config table can be set without a config file
//! (`--param committee_size=4`, `--param pbft.batch_size=64`). Nothing here names
//! an engine: a setting goes into the engine's table, which the engine then reads
//! and checks as it reads a node config.

use crate::engines::EngineConfig;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::str::FromStr;

/// One `NAME=VALUE` setting. `NAME` is a field of the engine's table, dotted to
/// reach into a nested one (`pbft.window`); `VALUE` is TOML (`4`, `true`,
/// `"text"`), or else taken as a string.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineParam {
    /// The field's path from the engine's table.
    pub path: Vec<String>,
    /// Its value.
    pub value: toml::Value,
}

impl FromStr for EngineParam {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, raw) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
        let path: Vec<String> = name.trim().split('.').map(str::to_string).collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(format!("{name:?} is not a parameter name"));
        }
        let raw = raw.trim();
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        Ok(EngineParam { path, value })
    }
}

/// Sets each of `params` in `table`, creating nested tables on the way.
pub fn set_params(table: &mut toml::Table, params: &[EngineParam]) -> Result<(), String> {
    for p in params {
        let (last, parents) = p
            .path
            .split_last()
            .ok_or_else(|| "an empty parameter name".to_string())?;
        let mut t = &mut *table;
        for name in parents {
            t = t
                .entry(name.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| format!("{name} is not a table"))?;
        }
        t.insert(last.clone(), p.value.clone());
    }
    Ok(())
}

/// `cfg`, an engine's typed parameters, with `params` set: unknown fields and
/// values of the wrong type are refused as in a config file.
pub fn with_params<C: Serialize + DeserializeOwned + Clone>(
    cfg: &C,
    params: &[EngineParam],
) -> Result<C, String> {
    if params.is_empty() {
        return Ok(cfg.clone());
    }
    let mut table = match toml::Value::try_from(cfg) {
        Ok(toml::Value::Table(t)) => t,
        _ => return Err("the engine's parameters are not a table".into()),
    };
    set_params(&mut table, params)?;
    toml::Value::Table(table)
        .try_into()
        .map_err(|e| format!("--param: {e}"))
}

impl EngineConfig {
    /// This engine with `params` set over its parameters, checked again.
    pub fn with_params(&self, params: &[EngineParam]) -> Result<EngineConfig, String> {
        let mut table = self.table();
        set_params(&mut table, params)?;
        EngineConfig::new(self.name(), Some(&table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(s: &str) -> EngineParam {
        s.parse().expect("parses")
    }

    #[test]
    fn values_are_toml_or_else_strings() {
        assert_eq!(param("committee_size=4").value, toml::Value::Integer(4));
        assert_eq!(param("a = true").value, toml::Value::Boolean(true));
        assert_eq!(param("a=\"x y\"").value, toml::Value::String("x y".into()));
        assert_eq!(param("a=plain").value, toml::Value::String("plain".into()));
        assert_eq!(param("pbft.window=32").path, ["pbft", "window"]);
        assert!("novalue".parse::<EngineParam>().is_err());
        assert!("a..b=1".parse::<EngineParam>().is_err());
    }

    #[test]
    fn params_reach_nested_fields_and_are_checked_by_the_engine() {
        let c = EngineConfig::new("tpbft", None).expect("defaults");
        let set = c
            .with_params(&[param("committee_size=4"), param("pbft.batch_size=7")])
            .expect("valid");
        assert_eq!(set.table()["committee_size"].as_integer(), Some(4));
        assert_eq!(set.table()["pbft"]["batch_size"].as_integer(), Some(7));
        let e = c.with_params(&[param("comittee_size=4")]).unwrap_err();
        assert!(e.contains("comittee_size"), "{e}");
        let e = c.with_params(&[param("committee_size=0")]).unwrap_err();
        assert!(e.contains("committee_size"), "{e}");
        // The evidence record takes one place of each batch: one is too few.
        let e = c.with_params(&[param("pbft.batch_size=1")]).unwrap_err();
        assert!(e.contains("batch_size must be at least 2"), "{e}");
    }

    #[test]
    fn typed_parameters_take_params_too() {
        let cfg = dwcp_consensus::tpbft::TpbftConfig::default();
        let set = with_params(&cfg, &[param("epoch_length=512")]).expect("valid");
        assert_eq!(set.epoch_length, 512);
        assert_eq!(with_params(&cfg, &[]).expect("unchanged"), cfg);
        assert!(with_params(&cfg, &[param("epoch_length=\"long\"")]).is_err());
    }
}
