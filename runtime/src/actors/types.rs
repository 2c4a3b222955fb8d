//! The actor types this host serves: who implements each (an app connection or embedded
//! Rust), with its resolved options. Every registration, whatever its channel, is checked
//! here: names as placement checks them, options all positive. Changes are published so the
//! host re-registers with placement.
//!
//! An app that fails its health checks is *suspended* ([`TypeRegistry::suspend`]) rather than
//! withdrawn: the types of its providers ([`AppGroup`]: the HTTP app, or every connection of
//! the gRPC app channel) stay registered, and keep their names from other providers, but are
//! neither published to placement nor found by [`TypeRegistry::get`], so they are not served
//! here. Types registered while their group is suspended (a gRPC app that reconnects) are
//! held back the same way. [`TypeRegistry::resume`] serves them all again, with nothing asked
//! of the app.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use rookery_core::job_reminders::{is_jobs_type, JOBS_TYPE_PREFIX};
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

/// The providers that one app's health checks cover, suspended and resumed together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AppGroup {
    /// [`Provider::HttpApp`].
    Http,
    /// Every [`Provider::App`] connection, present or future.
    Grpc,
}

impl Provider {
    /// The app group this provider belongs to; embedded types belong to none.
    pub fn app_group(self) -> Option<AppGroup> {
        match self {
            Provider::Embedded => None,
            Provider::App(_) => Some(AppGroup::Grpc),
            Provider::HttpApp => Some(AppGroup::Http),
        }
    }
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
    #[error("actor type {0:?} is reserved: names starting with {JOBS_TYPE_PREFIX:?} belong to the jobs of apps")]
    Reserved(String),
    #[error("jobs and bindings belong to an app: this host runs without --app-id")]
    NoAppId,
}

impl From<TypeNameError> for TypeError {
    fn from(error: TypeNameError) -> TypeError {
        match error {
            TypeNameError::Empty => TypeError::Empty,
            TypeNameError::TooLong => TypeError::TooLong,
        }
    }
}

#[derive(Default)]
struct Registered {
    types: BTreeMap<String, RegisteredType>,
    /// Groups whose types are not served while their app is unhealthy.
    suspended: BTreeSet<AppGroup>,
}

impl Registered {
    fn served(&self, registered: &RegisteredType) -> bool {
        registered
            .provider
            .app_group()
            .is_none_or(|group| !self.suspended.contains(&group))
    }

    fn names_of(&self, group: AppGroup) -> Vec<String> {
        self.types
            .iter()
            .filter(|(_, t)| t.provider.app_group() == Some(group))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

pub struct TypeRegistry {
    types: RwLock<Registered>,
    /// The sorted names of served types, for placement registration.
    names: watch::Sender<Vec<String>>,
}

impl Default for TypeRegistry {
    fn default() -> Self {
        TypeRegistry {
            types: RwLock::new(Registered::default()),
            names: watch::channel(Vec::new()).0,
        }
    }
}

impl TypeRegistry {
    /// Registers several types of one provider, all or none. While the provider's group is
    /// suspended they are registered but not served.
    pub fn register(
        &self,
        provider: Provider,
        types: Vec<(String, Arc<dyn ActorChannel>, TypeOptions)>,
    ) -> Result<(), TypeError> {
        if let Some((name, _, _)) = types.iter().find(|(name, _, _)| is_jobs_type(name)) {
            return Err(TypeError::Reserved(name.clone()));
        }
        self.insert(provider, types)
    }

    /// Registers the jobs type of an app (`rookery_core::job_reminders`) for the provider
    /// that delivers its jobs; suspended and withdrawn with the provider's other types.
    pub fn register_jobs_type(
        &self,
        provider: Provider,
        name: String,
        channel: Arc<dyn ActorChannel>,
        options: TypeOptions,
    ) -> Result<(), TypeError> {
        if !is_jobs_type(&name) {
            return Err(TypeError::Reserved(name));
        }
        self.insert(provider, vec![(name, channel, options)])
    }

    fn insert(
        &self,
        provider: Provider,
        types: Vec<(String, Arc<dyn ActorChannel>, TypeOptions)>,
    ) -> Result<(), TypeError> {
        let mut registered = self.types.write().expect("types lock");
        let map = &mut registered.types;
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
        self.publish(&registered);
        Ok(())
    }

    /// Withdraws every type of a provider; returns their names.
    pub fn withdraw(&self, provider: Provider) -> Vec<String> {
        let mut registered = self.types.write().expect("types lock");
        let gone: Vec<String> = registered
            .types
            .iter()
            .filter(|(_, t)| t.provider == provider)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &gone {
            registered.types.remove(name);
        }
        self.publish(&registered);
        gone
    }

    /// Withdraws every type (the host shuts down): the channels, and what they hold of the
    /// host, are released.
    pub fn withdraw_all(&self) {
        let mut registered = self.types.write().expect("types lock");
        registered.types.clear();
        self.publish(&registered);
    }

    /// Stops serving the types of `group` (their app is unhealthy), and those it registers
    /// until [`resume`](Self::resume); returns the names that were registered.
    pub fn suspend(&self, group: AppGroup) -> Vec<String> {
        let mut registered = self.types.write().expect("types lock");
        registered.suspended.insert(group);
        self.publish(&registered);
        registered.names_of(group)
    }

    /// Serves the types of `group` again; returns their names.
    pub fn resume(&self, group: AppGroup) -> Vec<String> {
        let mut registered = self.types.write().expect("types lock");
        registered.suspended.remove(&group);
        self.publish(&registered);
        registered.names_of(group)
    }

    /// Whether `group` is suspended.
    pub fn is_suspended(&self, group: AppGroup) -> bool {
        self.types
            .read()
            .expect("types lock")
            .suspended
            .contains(&group)
    }

    /// The type if this host serves it: registered, and not suspended.
    pub fn get(&self, name: &str) -> Option<RegisteredType> {
        let registered = self.types.read().expect("types lock");
        registered
            .types
            .get(name)
            .filter(|t| registered.served(t))
            .cloned()
    }

    /// The served type names as they change.
    pub fn subscribe(&self) -> watch::Receiver<Vec<String>> {
        self.names.subscribe()
    }

    fn publish(&self, registered: &Registered) {
        let names: Vec<String> = registered
            .types
            .iter()
            .filter(|(_, t)| registered.served(t))
            .map(|(name, _)| name.clone())
            .collect();
        self.names.send_if_modified(|current| {
            let changed = *current != names;
            *current = names;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::channel::Nobody;
    use crate::config::ActorDefaults;

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

    #[test]
    fn a_suspended_group_is_not_served_nor_published_and_holds_back_new_registrations() {
        let registry = TypeRegistry::default();
        let options = ActorDefaults::default().type_options();
        let names = registry.subscribe();
        registry
            .register(Provider::App(1), one("A", options.clone()))
            .expect("A");
        registry
            .register(Provider::Embedded, one("E", options.clone()))
            .expect("E");
        registry
            .register(Provider::HttpApp, one("H", options.clone()))
            .expect("H");
        assert_eq!(registry.suspend(AppGroup::Grpc), vec!["A".to_owned()]);
        assert!(registry.is_suspended(AppGroup::Grpc));
        assert!(!registry.is_suspended(AppGroup::Http));
        assert!(registry.get("A").is_none(), "not served while suspended");
        assert!(registry.get("E").is_some() && registry.get("H").is_some());
        assert_eq!(*names.borrow(), vec!["E".to_owned(), "H".to_owned()]);

        // A connection registering meanwhile is held back too, and its name stays taken.
        registry
            .register(Provider::App(2), one("B", options.clone()))
            .expect("B");
        assert!(registry.get("B").is_none());
        assert_eq!(
            registry.register(Provider::Embedded, one("A", options.clone())),
            Err(TypeError::Taken("A".into()))
        );
        assert_eq!(*names.borrow(), vec!["E".to_owned(), "H".to_owned()]);
        // A connection that ends while suspended takes its types with it.
        assert_eq!(registry.withdraw(Provider::App(1)), vec!["A".to_owned()]);

        assert_eq!(registry.resume(AppGroup::Grpc), vec!["B".to_owned()]);
        assert!(registry.get("B").is_some());
        assert_eq!(
            *names.borrow(),
            vec!["B".to_owned(), "E".to_owned(), "H".to_owned()]
        );

        assert_eq!(registry.suspend(AppGroup::Http), vec!["H".to_owned()]);
        assert!(registry.get("H").is_none());
        assert_eq!(*names.borrow(), vec!["B".to_owned(), "E".to_owned()]);
        assert_eq!(registry.resume(AppGroup::Http), vec!["H".to_owned()]);
        assert!(registry.get("H").is_some());
    }
}
