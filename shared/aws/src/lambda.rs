//! Lambda entry points shared by functions/*.
