import "./styles.css";
import { listenForAnnouncements } from "./site/announcements";
import { showHealth } from "./site/health";
import { setUpCopyButtons } from "./site/copy";

const status = document.getElementById("service-status");
if (status) void showHealth(status);

const announcements = document.getElementById("announcements");
if (announcements) listenForAnnouncements(announcements);

setUpCopyButtons();
