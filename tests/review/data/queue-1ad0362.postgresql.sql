-- The review queue made by brandbatch 1ad0362's review/queue.py on PostgreSQL (pg_dump --inserts;
-- psql's \restrict lines removed). Items in every state, decisions, the session secret.
--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: review_decisions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.review_decisions (
    id integer NOT NULL,
    item_id character varying(32) NOT NULL,
    item_version integer NOT NULL,
    reviewer character varying(100) NOT NULL,
    decided_at timestamp with time zone NOT NULL,
    decision character varying(20) NOT NULL,
    reason character varying(40),
    note text,
    approval_id character varying(40),
    job_keys text NOT NULL
);


--
-- Name: review_decisions_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.review_decisions_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: review_decisions_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.review_decisions_id_seq OWNED BY public.review_decisions.id;


--
-- Name: review_items; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.review_items (
    id character varying(32) NOT NULL,
    campaign character varying(200) NOT NULL,
    asset_id character varying(100) NOT NULL,
    variant integer NOT NULL,
    "row" integer NOT NULL,
    style character varying(100) NOT NULL,
    style_version integer NOT NULL,
    prompt text NOT NULL,
    reroll integer NOT NULL,
    planned character varying(64) NOT NULL,
    jobs text NOT NULL,
    verdict character varying(10) NOT NULL,
    qa text NOT NULL,
    state character varying(20) NOT NULL,
    approval_id character varying(40),
    approved_by character varying(100),
    version integer NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: review_settings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.review_settings (
    name character varying(40) NOT NULL,
    value text NOT NULL
);


--
-- Name: review_decisions id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.review_decisions ALTER COLUMN id SET DEFAULT nextval('public.review_decisions_id_seq'::regclass);


--
-- Data for Name: review_decisions; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.review_decisions VALUES (1, '6a09cc44a35200453adc53d9012b20f3', 1, 'qa-auto', '2026-11-30 15:49:47.654044+00', 'approve', NULL, NULL, 'auto-e730cad01682adda', '{"1:1": "617570169bf06a415d6a22ac677ef99694ae1249da56c160e7feec3d14cbc74e", "9:16": "016f382bff5c869f446f351c6c74b8d7474cdb1bc44dadba065693f04e1b0a73"}');
INSERT INTO public.review_decisions VALUES (2, 'd64c4b38f12d6a45d6a9102fd5e50237', 2, 'dana', '2026-11-30 15:49:47.723294+00', 'approve', NULL, 'looks right', 'rev-54a96b174a14ff6d', '{"1:1": "caaf00f56043e1208e833065accdcd35053d011d077b5918c9d52abbe0f349ef", "9:16": "edad96ba346675e46cd089044289e110c3efe3f378c14d4adf14358cc6a60289"}');
INSERT INTO public.review_decisions VALUES (3, 'eaf166b4d27563c271ad7d90773e9f3f', 2, 'dana', '2026-11-30 15:49:47.779123+00', 'reroll', 'composition', NULL, NULL, '{"1:1": "7896a05e096af6d71a135442c10f9cc9364ef6d6265b00e566fe422feae6687c", "9:16": "e87aab3ed528a64005da0641529fe93f0609fd13908846c79679c9d5ad3d8580"}');
INSERT INTO public.review_decisions VALUES (4, '39e1bc08954164341be16009a2732e8f', 2, 'sam', '2026-11-30 15:49:47.855318+00', 'reject', 'off_brand', NULL, NULL, '{"1:1": "23ac43b3e391252f71b563864e898d2328086b124f935979f876279b5958d04b", "9:16": "f0cd6f5c84f8b80da0b3cc3711cc634d7a2ec6fb5a941c3768baf0fd111cfab8"}');


--
-- Data for Name: review_items; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.review_items VALUES ('3867a4c8feeaea9c45f777649c644018', 'spring-launch', 'tent-01', 1, 2, 'acme', 2, 'a photo of tent-01', 0, '7cf99e406858850926ab3895e49ea336a61dad50d4dc015961dc8d98385c733b', '{"1:1": {"aspect": "1:1", "campaign": "spring-launch", "guidance": 6.0, "height": 128, "model_family": "sd", "model_id": "brandbatch/tiny-sd", "model_revision": "builtin-1", "negative_prompt": "blurry", "prompt": "a photo of tent-01", "reroll": 0, "row": 2, "row_key": "tent-01", "scheduler": "euler", "seed": 6188792673619021660, "steps": 2, "style": "acme", "style_version": 2, "variant": 1, "width": 128}, "9:16": {"aspect": "9:16", "campaign": "spring-launch", "guidance": 6.0, "height": 128, "model_family": "sd", "model_id": "brandbatch/tiny-sd", "model_revision": "builtin-1", "negative_prompt": "blurry", "prompt": "a photo of tent-01", "reroll": 0, "row": 2, "row_key": "tent-01", "scheduler": "euler", "seed": 6188792673619021660, "steps": 2, "style": "acme", "style_version": 2, "variant": 1, "width": 72}}', 'review', '{"1:1": {"details": {}, "job_key": "0ff494b782c01f0662e25496a4d8b171b9a54107744c67719bd68f3ae1a47dab", "reasons": ["sampled"], "scores": {"clip_score": 0.25}, "verdict": "review"}, "9:16": {"details": {}, "job_key": "5abd197c1c25fddfc6f42472113471fc6d795c7b99a928210bc3c36f79c9a476", "reasons": ["sampled"], "scores": {"clip_score": 0.25}, "verdict": "review"}}', 'queued', NULL, NULL, 1, '2026-11-30 15:49:47.591981+00');
INSERT INTO public.review_items VALUES ('6a09cc44a35200453adc53d9012b20f3', 'spring-launch', 'boots-02', 1, 2, 'acme', 2, 'a photo of boots-02', 0, '7b938abfe8ff5ca633d8b350a88e33e65dd87fbf5f8f1d137bf7866bea5c4d06', '{"1:1": {"aspect": "1:1", "campaign": "spring-launch", "guidance": 6.0, "height": 128, "model_family": "sd", "model_id": "brandbatch/tiny-sd", "model_revision": "builtin-1", "negative_prompt": "blurry", "prompt": "a photo of boots-02", "reroll": 0, "row": 2, "row_key": "boots-02", "scheduler": "euler", "seed": 7604265549089970648, "steps": 2, "style": "acme", "style_version": 2, "variant": 1, "width": 128}, "9:16": {"aspect": "9:16", "campaign": "spring-launch", "guidance": 6.0, "height": 128, "model_family": "sd", "model_id": "brandbatch/tiny-sd", "model_revision": "builtin-1", "negative_prompt": "blurry", "prompt": "a photo of boots-02", "reroll": 0, "row": 2, "row_key": "boots-02", "scheduler": "euler", "seed": 7604265549089970648, "steps": 2, "style": "acme", "style_version": 2, "variant": 1, "width": 72}}', 'pass', '{"1:1": {"details": {}, "job_key": "617570169bf06a415d6a22ac677ef99694ae1249da56c160e7feec3d14cbc74e", "reasons": [], "scores": {"clip_score": 0.25}, "verdict": "pass"}, "9:16": {"details": {}, "job_key": "016f382bff5c869f446f351c6c74b8d7474cdb1bc44dadba065693f04e1b0a73", "reasons": [], "scores": {"clip_score": 0.25}, "verdict": "pass"}}', 'approved', 'auto-e730cad01682adda', 'qa-auto', 1, '2026-11-30 15:49:47.626361+00');
INSERT INTO public.review_items VALUES ('d64c4b38f12d6a45d6a9102fd5e50237', 'spring-launch', 'pack-03', 1, 2, 'acme', 2, 'a photo of pack-03', 0, '6a378ec2cc03356468d5d56734ef0f5dbcb98ae24a6c65b1d7cfd3a1d4693a3c', '{"1:1": {"aspect": "1:1", "campaign": "spring-launch", "guidance": 6.0, "height": 128, "model_family": "sd", "model_id": "brandbatch/tiny-sd", "model_revision": "builtin-1", "negative_prompt": "blurry", "prompt": "a photo of pack-03", "reroll": 0, "row": 2, "row_key": "pack-03", "scheduler": "euler", "seed": 5053632866708526763, "steps": 2, "style": "acme", "style_version": 2, "variant": 1, "width": 128}, "9:16": {"aspect": "9:16", "campaign": "spring-launch", "guidance": 6.0, "height": 128, "model_family": "sd", "model_id": "brandbatch/tiny-sd", "model_revision": "builtin-1", "negative_prompt": "blurry", "prompt": "a photo of pack-03", "reroll": 0, "row": 2, "row_key": "pack-03", "scheduler": "euler", "seed": 5053632866708526763, "steps": 2, "style": "acme", "style_version": 2, "variant": 1, "width": 72}}', 'review', '{"1:1": {"details": {}, "job_key": "caaf00f56043e1208e833065accdcd35053d011d077b5918c9d52abbe0f349ef", "reasons": ["sampled"], "scores": {"clip_score": 0.25}, "verdict": "review"}, "9:16": {"details": {}, "job_key": "edad96ba346675e46cd089044289e110c3efe3f378c14d4adf14358cc6a60289", "reasons": ["sampled"], "scores": {"clip_score": 0.25}, "verdict": "review"}}', 'approved', 'rev-54a96b174a14ff6d', 'dana', 2, '2026-11-30 15:49:47.714399+00');
INSERT INTO public.review_items VALUES ('eaf166b4d27563c271ad7d90773e9f3f', 'spring-launch', 'bottle-04', 1, 2, 'acme', 2, 'a photo of bottle-04', 0, '20a78f0efc7718663fb365969bdc2deaaa651a87cbf5b416f84986dd28a4fff1', '{"1:1": {"aspect": "1:1", "campaign": "spring-launch", "guidance": 6.0, "height": 128, "model_family": "sd", "model_id": "brandbatch/tiny-sd", "model_revision": "builtin-1", "negative_prompt": "blurry", "prompt": "a photo of bottle-04", "reroll": 0, "row": 2, "row_key": "bottle-04", "scheduler": "euler", "seed": 3964168158037227090, "steps": 2, "style": "acme", "style_version": 2, "variant": 1, "width": 128}, "9:16": {"aspect": "9:16", "campaign": "spring-launch", "guidance": 6.0, "height": 128, "model_family": "sd", "model_id": "brandbatch/tiny-sd", "model_revision": "builtin-1", "negative_prompt": "blurry", "prompt": "a photo of bottle-04", "reroll": 0, "row": 2, "row_key": "bottle-04", "scheduler": "euler", "seed": 3964168158037227090, "steps": 2, "style": "acme", "style_version": 2, "variant": 1, "width": 72}}', 'review', '{"1:1": {"details": {}, "job_key": "7896a05e096af6d71a135442c10f9cc9364ef6d6265b00e566fe422feae6687c", "reasons": ["sampled"], "scores": {"clip_score": 0.25}, "verdict": "review"}, "9:16": {"details": {}, "job_key": "e87aab3ed528a64005da0641529fe93f0609fd13908846c79679c9d5ad3d8580", "reasons": ["sampled"], "scores": {"clip_score": 0.25}, "verdict": "review"}}', 'reroll_requested', NULL, NULL, 2, '2026-11-30 15:49:47.776432+00');
INSERT INTO public.review_items VALUES ('39e1bc08954164341be16009a2732e8f', 'spring-launch', 'jacket-05', 1, 2, 'acme', 2, 'a photo of jacket-05', 0, '564ebb42d396bc848f62e08e3dcdcd2a6cc38329fccbdfb8f930f4f413d755fe', '{"1:1": {"aspect": "1:1", "campaign": "spring-launch", "guidance": 6.0, "height": 128, "model_family": "sd", "model_id": "brandbatch/tiny-sd", "model_revision": "builtin-1", "negative_prompt": "blurry", "prompt": "a photo of jacket-05", "reroll": 0, "row": 2, "row_key": "jacket-05", "scheduler": "euler", "seed": 425707300374979120, "steps": 2, "style": "acme", "style_version": 2, "variant": 1, "width": 128}, "9:16": {"aspect": "9:16", "campaign": "spring-launch", "guidance": 6.0, "height": 128, "model_family": "sd", "model_id": "brandbatch/tiny-sd", "model_revision": "builtin-1", "negative_prompt": "blurry", "prompt": "a photo of jacket-05", "reroll": 0, "row": 2, "row_key": "jacket-05", "scheduler": "euler", "seed": 425707300374979120, "steps": 2, "style": "acme", "style_version": 2, "variant": 1, "width": 72}}', 'review', '{"1:1": {"details": {}, "job_key": "23ac43b3e391252f71b563864e898d2328086b124f935979f876279b5958d04b", "reasons": ["sampled"], "scores": {"clip_score": 0.25}, "verdict": "review"}, "9:16": {"details": {}, "job_key": "f0cd6f5c84f8b80da0b3cc3711cc634d7a2ec6fb5a941c3768baf0fd111cfab8", "reasons": ["sampled"], "scores": {"clip_score": 0.25}, "verdict": "review"}}', 'rejected', NULL, NULL, 2, '2026-11-30 15:49:47.845793+00');


--
-- Data for Name: review_settings; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.review_settings VALUES ('secret', '65c6208ffcbf07bd5a66e33708beb672e007011c505b753ab25d4599d29fb51e');


--
-- Name: review_decisions_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.review_decisions_id_seq', 4, true);


--
-- Name: review_decisions review_decisions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.review_decisions
    ADD CONSTRAINT review_decisions_pkey PRIMARY KEY (id);


--
-- Name: review_items review_items_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.review_items
    ADD CONSTRAINT review_items_pkey PRIMARY KEY (id);


--
-- Name: review_settings review_settings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.review_settings
    ADD CONSTRAINT review_settings_pkey PRIMARY KEY (name);


--
-- Name: ix_review_decisions_item_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_review_decisions_item_id ON public.review_decisions USING btree (item_id);


--
-- Name: ix_review_items_campaign; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_review_items_campaign ON public.review_items USING btree (campaign);


--
-- Name: ix_review_items_state; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_review_items_state ON public.review_items USING btree (state);


--
-- Name: review_decisions review_decisions_item_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.review_decisions
    ADD CONSTRAINT review_decisions_item_id_fkey FOREIGN KEY (item_id) REFERENCES public.review_items(id);


--
-- PostgreSQL database dump complete
--


