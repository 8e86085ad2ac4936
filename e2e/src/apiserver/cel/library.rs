//! The CEL environment of CRD validation rules: the CEL standard library, the strings
//! extension, and the Kubernetes quantity library, with the semantics of the API server's
//! `k8s.io/apiserver/pkg/cel/library` (`quantity`, `isQuantity`, `isGreaterThan`,
//! `isLessThan`, `compareTo`, `add`, `sub`, `asInteger`, `isInteger`,
//! `asApproximateFloat`, `sign`).

use std::any::Any;
use std::sync::Arc;

use cel::common::types::{CelBool, CelDouble, CelInt, CelString, Type};
use cel::common::value::{StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::quantity::Quantity;

/// The CEL type of quantities, as Kubernetes names it.
pub static QUANTITY_TYPE: Type = Type::new_unspecified_type("kubernetes.Quantity");

/// A quantity as a CEL value.
#[derive(Debug, Clone, Copy)]
pub struct CelQuantity(pub Quantity);

impl Val for CelQuantity {
    fn get_type(&self) -> &Type {
        <Self as Val>::cel_type()
    }
    fn cel_type() -> &'static Type {
        &QUANTITY_TYPE
    }
    // Like the API server: quantities are equal when they compare equal (`1Gi == 1024Mi`).
    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<CelQuantity>().is_some_and(|o| o.0.compare(self.0).is_eq())
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(*self)
    }
    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}
impl StaticVal for CelQuantity {}

/// Function names the environment declares (besides operators), for the compile-time
/// check of undeclared references.
pub const FUNCTIONS: &[&str] = &[
    // Standard library.
    "size",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "type",
    "dyn",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "optional.of",
    "optional.ofNonZeroValue",
    "optional.none",
    "hasValue",
    "value",
    "or",
    "orValue",
    // Strings extension.
    "charAt",
    "indexOf",
    "lastIndexOf",
    "join",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "substring",
    "format",
    "strings.quote",
    "reverse",
    // Kubernetes quantity library.
    "quantity",
    "isQuantity",
    "isGreaterThan",
    "isLessThan",
    "compareTo",
    "add",
    "sub",
    "asInteger",
    "isInteger",
    "asApproximateFloat",
    "sign",
];

/// Macros the parser expands (they never reach the checker as calls, listed for clarity).
pub const MACROS: &[&str] = &["has", "all", "exists", "exists_one", "map", "filter"];

fn quantity_error(function: &str, e: impl ToString) -> ExecutionError {
    ExecutionError::function_error(function, e.to_string())
}

fn quantity(s: &CelString<'_>) -> Result<CelQuantity, ExecutionError> {
    Quantity::parse(s.inner()).map(CelQuantity).map_err(|e| quantity_error("quantity", e))
}

fn is_quantity(s: &CelString<'_>) -> CelBool {
    Quantity::parse(s.inner()).is_ok().into()
}

fn is_greater_than(a: &CelQuantity, b: &CelQuantity) -> CelBool {
    a.0.compare(b.0).is_gt().into()
}

fn is_less_than(a: &CelQuantity, b: &CelQuantity) -> CelBool {
    a.0.compare(b.0).is_lt().into()
}

fn compare_to(a: &CelQuantity, b: &CelQuantity) -> CelInt {
    (a.0.compare(b.0) as i64).into()
}

fn add(a: &CelQuantity, b: &CelQuantity) -> Result<CelQuantity, ExecutionError> {
    a.0.checked_add(b.0).map(CelQuantity).map_err(|e| quantity_error("add", e))
}

fn add_int(a: &CelQuantity, b: &CelInt) -> Result<CelQuantity, ExecutionError> {
    a.0.checked_add(Quantity::from_int(*b.inner())).map(CelQuantity).map_err(|e| quantity_error("add", e))
}

fn sub(a: &CelQuantity, b: &CelQuantity) -> Result<CelQuantity, ExecutionError> {
    a.0.checked_sub(b.0).map(CelQuantity).map_err(|e| quantity_error("sub", e))
}

fn sub_int(a: &CelQuantity, b: &CelInt) -> Result<CelQuantity, ExecutionError> {
    a.0.checked_sub(Quantity::from_int(*b.inner())).map(CelQuantity).map_err(|e| quantity_error("sub", e))
}

fn as_integer(a: &CelQuantity) -> Result<CelInt, ExecutionError> {
    a.0.as_i64().map(CelInt::from).ok_or_else(|| {
        quantity_error("asInteger", format!("cannot convert value to integer: {} is not an integer in range", a.0))
    })
}

fn is_integer(a: &CelQuantity) -> CelBool {
    a.0.as_i64().is_some().into()
}

fn as_approximate_float(a: &CelQuantity) -> CelDouble {
    a.0.as_f64().into()
}

fn sign(a: &CelQuantity) -> CelInt {
    a.0.sign().into()
}

/// Registers the Kubernetes quantity library on `env`.
pub fn quantity_library(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(QUANTITY_TYPE.to_owned())?;
    cel::add_overload!(env, fn quantity: (CelString) -> Result<CelQuantity>)?;
    cel::add_overload!(env, fn is_quantity: (CelString) -> CelBool)?;
    cel::add_member_overload!(env, fn is_greater_than: (CelQuantity, CelQuantity) -> CelBool)?;
    cel::add_member_overload!(env, fn is_less_than: (CelQuantity, CelQuantity) -> CelBool)?;
    cel::add_member_overload!(env, fn compare_to: (CelQuantity, CelQuantity) -> CelInt)?;
    cel::add_member_overload!(env, fn add: (CelQuantity, CelQuantity) -> Result<CelQuantity>)?;
    cel::add_member_overload!(env, fn add_int: (CelQuantity, CelInt) -> Result<CelQuantity>, name = "add")?;
    cel::add_member_overload!(env, fn sub: (CelQuantity, CelQuantity) -> Result<CelQuantity>)?;
    cel::add_member_overload!(env, fn sub_int: (CelQuantity, CelInt) -> Result<CelQuantity>, name = "sub")?;
    cel::add_member_overload!(env, fn as_integer: (CelQuantity) -> Result<CelInt>)?;
    cel::add_member_overload!(env, fn is_integer: (CelQuantity) -> CelBool)?;
    cel::add_member_overload!(env, fn as_approximate_float: (CelQuantity) -> CelDouble)?;
    cel::add_member_overload!(env, fn sign: (CelQuantity) -> CelInt)?;
    Ok(())
}

/// The environment every rule is compiled and evaluated in.
pub fn environment() -> Result<Arc<Env>, DeclarationError> {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)?;
    env.add_extension(quantity_library)?;
    Ok(Arc::new(env))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cel::{Context, Value};

    fn eval(src: &str) -> Result<Value, String> {
        let env = environment().map_err(|e| e.to_string())?;
        let program = env.compile(src).map_err(|e| e.to_string())?;
        let context = Context::with_env(env);
        program.execute(&context).map_err(|e| e.to_string())
    }

    #[test]
    fn quantity_functions_behave_like_kubernetes() {
        for (src, want) in [
            ("isQuantity('10Gi')", true),
            ("isQuantity('10GB')", false),
            ("quantity('10Gi').isGreaterThan(quantity('0'))", true),
            ("quantity('0').isGreaterThan(quantity('0'))", false),
            ("quantity('1Gi') == quantity('1024Mi')", true),
            ("quantity('1G').isLessThan(quantity('1Gi'))", true),
            ("quantity('1').compareTo(quantity('2')) == -1", true),
            ("quantity('1Gi').add(quantity('1Gi')) == quantity('2Gi')", true),
            ("quantity('2').sub(1).asInteger() == 1", true),
            ("quantity('500m').isInteger()", false),
            ("quantity('500m').asApproximateFloat() == 0.5", true),
            ("quantity('-3').sign() == -1", true),
            ("'ABC'.lowerAscii() == 'abc'", true),
        ] {
            assert_eq!(eval(src), Ok(Value::Bool(want)), "{src}");
        }
        assert!(eval("quantity('ten')").is_err());
        assert!(eval("quantity('1.5').asInteger()").is_err());
    }
}
