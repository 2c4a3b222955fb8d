//! The actor types this host serves: who implements each (an app connection or embedded
//! Rust), with its resolved options. Every registration, whatever its channel, is checked
//! here: names as placement checks them, options all positive. Changes are published so the
//! host re-registers with placement.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use rookery_core::limits::{
    validate_actor_type, TypeNameError, MAX_ACTOR_TYPES_PER_HOST, MAX_ACTOR_TYPE_BYTES,
};

use crate::actors::channel::ActorChannel;
use crate::config::TypeOptions;

/// Who provides a type: distinguishes app connections so one app's disconnect withdraws only
/// its own types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    Embedded,
    /// A connection of the gRPC app channel.
    App(u64),
    /// The HTTP app of `--app-port`.
    HttpApp,
}

#[derive(Clone)]
pub struct RegisteredType {
    pub channel: Arc<dyn ActorChannel>,
    pub options: TypeOptions,
    pub provider: Provider,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TypeError {
    #[error("actor type names must not be empty")]
    Empty,
    #[error("actor type name is longer than {MAX_ACTOR_TYPE_BYTES} bytes")]
    TooLong,
    #[error("actor type {0:?} is already served by another app on this host")]
    Taken(String),
    #[error("{field} of type {actor_type:?} must be greater than 0")]
    InvalidOption {
        actor_type: String,
        field: &'static str,
    },
    #[error("more than {MAX_ACTOR_TYPES_PER_HOST} actor types on this host")]
    TooMany,
}

impl From<TypeNameError> for TypeError {
    fn from(error: TypeNameError) -> TypeError {
        match error {
            TypeNameError::Empty => TypeError::Empty,
            TypeNameError::TooLong => TypeError::TooLong,
        }
    }
}

pub struct TypeRegistry {
    types: RwLock<BTreeMap<String, RegisteredType>>,
    /// The sorted names of served types, for placement registration.
    names: watch::Sender<Vec<String>>,
}

impl Default for TypeRegistry {
    fn default() -> Self {
        TypeRegistry {
            types: RwLock::new(BTreeMap::new()),
            names: watch::channel(Vec::new()).0,
        }
    }
}

impl TypeRegistry {
    /// Registers several types of one provider, all or none.
    pub fn register(
        &self,
        provider: Provider,
        types: Vec<(String, Arc<dyn ActorChannel>, TypeOptions)>,
    ) -> Result<(), TypeError> {
        let mut map = self.types.write().expect("types lock");
        let mut added = 0;
        for (name, _, options) in &types {
            validate_actor_type(name)?;
            if let Some(field) = options.invalid_field() {
                return Err(TypeError::InvalidOption {
                    actor_type: name.clone(),
                    field,
                });
            }
            match map.get(name) {
                Some(existing) if existing.provider != provider => {
                    return Err(TypeError::Taken(name.clone()));
                }
                Some(_) => {}
                None => added += 1,
            }
        }
        if map.len() + added > MAX_ACTOR_TYPES_PER_HOST {
            return Err(TypeError::TooMany);
        }
        for (name, channel, options) in types {
            map.insert(
                name,
                RegisteredType {
                    channel,
                    options,
                    provider,
                },
            );
        }
        self.publish(&map);
        Ok(())
    }

    /// Withdraws every type of a provider; returns their names.
    pub fn withdraw(&self, provider: Provider) -> Vec<String> {
        let mut map = self.types.write().expect("types lock");
        let gone: Vec<String> = map
            .iter()
            .filter(|(_, t)| t.provider == provider)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &gone {
            map.remove(name);
        }
        self.publish(&map);
        gone
    }

    /// Withdraws every type (the host shuts down): the channels, and what they hold of the
    /// host, are released.
    pub fn withdraw_all(&self) {
        let mut map = self.types.write().expect("types lock");
        map.clear();
        self.publish(&map);
    }

    pub fn get(&self, name: &str) -> Option<RegisteredType> {
        self.types.read().expect("types lock").get(name).cloned()
    }

    /// The served type names as they change.
    pub fn subscribe(&self) -> watch::Receiver<Vec<String>> {
        self.names.subscribe()
    }

    fn publish(&self, map: &BTreeMap<String, RegisteredType>) {
        let names: Vec<String> = map.keys().cloned().collect();
        self.names.send_if_modified(|current| {
            let changed = *current != names;
            *current = names;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;

    use super::*;
    use crate::actors::channel::ActorInstance;
    use crate::call::ActorKey;
    use crate::config::ActorDefaults;
    use crate::error::CallError;

    struct Nobody;

    impl ActorChannel for Nobody {
        fn activate(
            &self,
            _key: Arc<ActorKey>,
        ) -> BoxFuture<'static, Result<Box<dyn ActorInstance>, CallError>> {
            Box::pin(async { Err(CallError::Internal("never activated here".into())) })
        }
    }

    fn one(name: &str, options: TypeOptions) -> Vec<(String, Arc<dyn ActorChannel>, TypeOptions)> {
        vec![(
            name.to_owned(),
            Arc::new(Nobody) as Arc<dyn ActorChannel>,
            options,
        )]
    }

    #[test]
    fn every_provider_gets_the_same_checks() {
        let registry = TypeRegistry::default();
        let mut zero_idle = ActorDefaults::default().type_options();
        zero_idle.idle_timeout_ms = 0;
        for provider in [Provider::Embedded, Provider::App(1)] {
            assert_eq!(
                registry.register(provider, one("A", zero_idle.clone())),
                Err(TypeError::InvalidOption {
                    actor_type: "A".into(),
                    field: "idle_timeout_ms",
                })
            );
            let long = "T".repeat(MAX_ACTOR_TYPE_BYTES + 1);
            let options = ActorDefaults::default().type_options();
            assert_eq!(
                registry.register(provider, one(&long, options.clone())),
                Err(TypeError::TooLong)
            );
            assert_eq!(
                registry.register(provider, one("", options)),
                Err(TypeError::Empty)
            );
        }
        assert!(
            registry.subscribe().borrow().is_empty(),
            "nothing registered"
        );
    }

    #[test]
    fn a_type_is_served_by_one_provider_and_withdrawn_with_it() {
        let registry = TypeRegistry::default();
        let options = ActorDefaults::default().type_options();
        registry
            .register(Provider::App(1), one("A", options.clone()))
            .expect("first");
        assert_eq!(
            registry.register(Provider::App(2), one("A", options.clone())),
            Err(TypeError::Taken("A".into()))
        );
        registry
            .register(Provider::Embedded, one("B", options))
            .expect("another type");
        assert_eq!(registry.withdraw(Provider::App(1)), vec!["A".to_owned()]);
        assert_eq!(*registry.subscribe().borrow(), vec!["B".to_owned()]);
        registry.withdraw_all();
        assert!(registry.get("B").is_none());
    }
}
