//! Where text lives in OpenAI bodies: lenient, borrowing views of the fields the rules read,
//! and the slot addresses used to write a rewritten text back.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A string borrowed from the body when it has no escapes.
pub(crate) type Text<'a> = Cow<'a, str>;

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
        Ok(Cow::Owned(v))
    }
}

/// Deserializes a string, borrowing when possible.
pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Text<'de>, D::Error> {
    d.deserialize_str(TextVisitor)
}

/// A map key (or any string) borrowed from the body when it has no escapes. serde's own
/// `Cow<str>` always copies; map keys go through this instead.
pub(crate) struct TextSeed;

impl<'de> de::DeserializeSeed<'de> for TextSeed {
    type Value = Text<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        text(d)
    }
}

/// Deserializes an optional string, borrowing when possible.
pub(crate) fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Text<'de>>, D::Error> {
    struct OptVisitor;
    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<Text<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            text(d).map(Some)
        }
    }
    d.deserialize_option(OptVisitor)
}

/// A text-bearing value: a string, or a list whose elements are strings, text parts
/// (`{"type": "text", "text": ...}` and kin), or items carrying content; anything else (token
/// arrays, image parts, numbers) holds no text to scan and is left alone.
#[derive(Debug, Default)]
pub(crate) enum Content<'a> {
    /// No text here (null, a number, an object without text).
    #[default]
    Empty,
    /// A plain string.
    Text(Text<'a>),
    /// A list; each element may hold text.
    List(Vec<Element<'a>>),
}

/// One element of a list-shaped [`Content`].
#[derive(Debug, Default)]
pub(crate) enum Element<'a> {
    /// Holds no text (a token id, an image part, ...).
    #[default]
    Empty,
    /// A bare string (`"prompt": ["a", "b"]`).
    Text(Text<'a>),
    /// A part with a `text` field (`{"type": "text", "text": ...}`, `input_text`, ...).
    Part(Text<'a>),
    /// A conversation item (Responses API input): its role and its own content; or a tool
    /// output item whose `output` is text.
    Item {
        role: Option<Text<'a>>,
        content: Box<Content<'a>>,
        output: Option<Text<'a>>,
    },
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(e) = seq.next_element::<Element<'de>>()? {
                    out.push(e);
                }
                Ok(Content::List(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                IgnoredAny::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Content::Empty)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::Empty)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::Empty)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Content::Empty)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Content::Empty)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Content::Empty)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Content::Empty)
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Element<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ElementVisitor;
        impl<'de> Visitor<'de> for ElementVisitor {
            type Value = Element<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array element")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Element::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Element::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut text_field = None;
                let mut role = None;
                let mut content = None;
                let mut output = None;
                while let Some(key) = map.next_key_seed(TextSeed)? {
                    match key.as_ref() {
                        "text" => text_field = map.next_value::<Content<'de>>()?.into_text(),
                        "role" => role = map.next_value::<Content<'de>>()?.into_text(),
                        "output" => output = map.next_value::<Content<'de>>()?.into_text(),
                        "content" => content = Some(map.next_value::<Content<'de>>()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(match (text_field, content, output) {
                    (Some(t), None, None) => Element::Part(t),
                    (_, content, output) if content.is_some() || output.is_some() => {
                        Element::Item {
                            role,
                            content: Box::new(content.unwrap_or_default()),
                            output,
                        }
                    }
                    _ => Element::Empty,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Element::Empty)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Element::Empty)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Element::Empty)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Element::Empty)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Element::Empty)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Element::Empty)
            }
        }
        d.deserialize_any(ElementVisitor)
    }
}

impl<'a> Content<'a> {
    /// The text when the content is one string, or a list holding exactly one text part.
    pub(crate) fn single_text(&self) -> Option<&str> {
        match self {
            Content::Text(t) => Some(t),
            Content::List(elements) => {
                let mut texts = elements.iter().filter_map(|e| match e {
                    Element::Text(t) | Element::Part(t) => Some(t.as_ref()),
                    _ => None,
                });
                let first = texts.next()?;
                texts.next().is_none().then_some(first)
            }
            Content::Empty => None,
        }
    }

    fn into_text(self) -> Option<Text<'a>> {
        match self {
            Content::Text(t) => Some(t),
            _ => None,
        }
    }

    /// Visits every text with its address below `base`. `role` is the role of the message the
    /// content belongs to, when known.
    pub(crate) fn visit<'s>(
        &'s self,
        base: &Slot,
        role: Option<&'s str>,
        f: &mut dyn FnMut(TextRef<'s>),
    ) {
        match self {
            Content::Empty => {}
            Content::Text(t) => f(TextRef {
                slot: base.clone(),
                role,
                text: t,
            }),
            Content::List(elements) => {
                for (i, element) in elements.iter().enumerate() {
                    match element {
                        Element::Empty => {}
                        Element::Text(t) => f(TextRef {
                            slot: base.child(Step::Index(i)),
                            role,
                            text: t,
                        }),
                        Element::Part(t) => f(TextRef {
                            slot: base.child(Step::Index(i)).child(Step::Key("text")),
                            role,
                            text: t,
                        }),
                        Element::Item {
                            role: item_role,
                            content,
                            output,
                        } => {
                            let item = base.child(Step::Index(i));
                            let item_role = item_role.as_deref().or(role);
                            content.visit(&item.child(Step::Key("content")), item_role, f);
                            if let Some(out) = output {
                                f(TextRef {
                                    slot: item.child(Step::Key("output")),
                                    role: Some("tool"),
                                    text: out,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One step of a JSON path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Key(&'static str),
    Index(usize),
}

/// Where a text sits in a body, as a JSON path (at most [`Slot::DEPTH`] steps, kept inline
/// so that finding texts does not allocate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    steps: [Step; Slot::DEPTH],
    len: u8,
}

impl Slot {
    const DEPTH: usize = 6;

    pub(crate) fn key(key: &'static str) -> Slot {
        Slot {
            steps: [Step::Index(0); Slot::DEPTH],
            len: 0,
        }
        .child(Step::Key(key))
    }

    pub(crate) fn child(&self, step: Step) -> Slot {
        let mut out = self.clone();
        // Bodies nest texts at most five steps deep; a deeper step is never produced.
        if let Some(slot) = out.steps.get_mut(usize::from(out.len)) {
            *slot = step;
            out.len += 1;
        }
        out
    }

    /// The byte range of the JSON value at this slot in `body`, found by
    /// descending through borrowed raw values: the rest of the body is never decoded, so it can
    /// be kept byte for byte.
    pub(crate) fn locate_value(&self, body: &[u8]) -> Option<std::ops::Range<usize>> {
        let mut raw: &RawValue = serde_json::from_slice(body).ok()?;
        for step in &self.steps[..usize::from(self.len)] {
            raw = match step {
                Step::Key(k) => {
                    let map: Vec<(Cow<'_, str>, &RawValue)> = object_entries(raw.get())?;
                    map.into_iter().rev().find(|(key, _)| key == k)?.1
                }
                Step::Index(i) => {
                    let items: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
                    *items.get(*i)?
                }
            };
        }
        let text = raw.get();
        let start = (text.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
        Some(start..start + text.len())
    }

    /// Like [`Slot::locate_value`], for a JSON string only.
    pub(crate) fn locate(&self, body: &[u8]) -> Option<std::ops::Range<usize>> {
        self.locate_value(body)
            .filter(|range| body.get(range.start) == Some(&b'"'))
    }
}

/// The entries of a JSON object, in order, borrowing from the text.
fn object_entries(json: &str) -> Option<Vec<(Cow<'_, str>, &RawValue)>> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(key) = map.next_key_seed(TextSeed)? {
                out.push((key, map.next_value::<&'de RawValue>()?));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    de::Deserializer::deserialize_map(&mut de, Entries).ok()
}

/// A text found in a body.
#[derive(Debug)]
pub(crate) struct TextRef<'s> {
    pub(crate) slot: Slot,
    /// The role of the message it belongs to (`system`, `user`, `tool`, ...), when known.
    pub(crate) role: Option<&'s str>,
    pub(crate) text: &'s str,
}

impl TextRef<'_> {
    /// Whether the text is (part of) the request's `prompt`.
    pub(crate) fn slot_is_prompt(&self) -> bool {
        self.slot.len > 0 && self.slot.steps[0] == Step::Key("prompt")
    }
}
