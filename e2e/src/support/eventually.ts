export { eventually } from '@pgfleet/sandbox';
