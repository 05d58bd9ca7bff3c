// The movie list as a single-page front end: nginx serves this file, and both it and
// /api/ are protected by nginx's auth_request to shibwsgi. The page asks /api/me and
// /api/movies; a 401 (not logged in, or logged out meanwhile) sends the browser to the
// login, which comes back here. Text from the API is only ever set as textContent.
"use strict";

const $ = (selector) => document.querySelector(selector);

class LoggedOut extends Error {}

function toLogin() {
  const here = location.pathname + location.search;
  location.assign("/login?next=" + encodeURIComponent(here));
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    cache: "no-store",
    ...options,
    headers: { Accept: "application/json", ...(options.headers || {}) },
  });
  if (response.status === 401) {
    toLogin();
    throw new LoggedOut();
  }
  let body = null;
  if ((response.headers.get("Content-Type") || "").includes("json")) {
    body = await response.json();
  }
  if (!response.ok) {
    throw new Error(message(body) || `${response.status} ${response.statusText}`);
  }
  return body;
}

function message(body) {
  if (!body) return "";
  if (typeof body.error === "string") return body.error;
  if (body.error && typeof body.error.message === "string") return body.error.message;
  return typeof body.message === "string" ? body.message : "";
}

function first(attributes, name) {
  const values = attributes[name] || [];
  return values.length ? values[0] : "";
}

function tags(element, values) {
  element.replaceChildren();
  if (!values.length) {
    element.textContent = "none";
    element.classList.add("muted");
    return;
  }
  for (const value of values) {
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = value;
    element.append(tag);
  }
}

function showIdentity(me) {
  const attributes = me.attributes || {};
  $("#greeting").textContent = "Signed in as " + (first(attributes, "name") || me.user);
  $("#user").textContent = me.user;
  $("#email").textContent = first(attributes, "email") || "—";
  tags($("#roles"), me.roles || []);
  tags($("#groups"), attributes.groups || []);
  $("#identity").hidden = false;
  $("#logout").hidden = false;
}

function showMovies(movies) {
  const rows = movies.map((movie) => {
    const row = document.createElement("tr");
    for (const value of [movie.id, movie.title, movie.director, movie.main_actor, movie.published]) {
      const cell = document.createElement("td");
      cell.textContent = value ?? "";
      row.append(cell);
    }
    const by = document.createElement("td");
    by.className = "muted";
    // Seeded movies have no author: say so, as the server-rendered page does.
    by.textContent = movie.created_by || "\u2014";
    if (!movie.created_by) by.title = "in the database from the start";
    row.append(by);
    return row;
  });
  $("#movies tbody").replaceChildren(...rows);
  $("#empty").hidden = movies.length > 0;
  $("#movies").hidden = false;
}

async function loadMovies() {
  showMovies(await api("/api/movies"));
}

async function addMovie(event) {
  event.preventDefault();
  const form = event.target;
  const note = $("#form-message");
  const fields = Object.fromEntries(new FormData(form));
  const movie = { title: fields.title };
  for (const name of ["director", "main_actor", "published"]) {
    if (fields[name]) movie[name] = fields[name];
  }
  try {
    await api("/api/movies", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(movie),
    });
    form.reset();
    note.className = "";
    note.textContent = "Added.";
    await loadMovies();
  } catch (error) {
    if (error instanceof LoggedOut) return;
    note.className = "error";
    note.textContent = "Not added: " + error.message;
  }
}

async function run(task) {
  const status = $("#status");
  try {
    await task();
    status.hidden = true;
  } catch (error) {
    if (error instanceof LoggedOut) return;
    status.hidden = false;
    status.className = "error";
    status.textContent = error.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#refresh").addEventListener("click", () => run(loadMovies));
  $("#add").addEventListener("submit", addMovie);
  run(async () => {
    showIdentity(await api("/api/me"));
    await loadMovies();
  });
});
